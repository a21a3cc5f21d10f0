"""Metrics: moments, score errors in each sampler's norm, certified TV lower bounds, mode masses and
distances between samples and a fresh reference."""
