"""Initializers: where Langevin-family samplers start (``N(0, I)``, fresh target draws, training points, a point)."""
