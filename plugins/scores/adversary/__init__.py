"""Searched perturbations: a score error optimized against a sampler at a fixed L2 budget."""
