"""Shared basics every stage may use: errors, seeding, atomic files, the artifact cache, statistics, the machine. Imports nothing else from bench_core."""
