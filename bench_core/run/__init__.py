"""Driving cells: executor tasks, training before the cells, progress, the folder lock, provenance. Imports the stages below it."""
