"""Targets: distributions with exact samples, log-densities and scores at every OU time t."""
