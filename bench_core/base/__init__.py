"""Shared basics every stage may use: errors, seeding, torch's default dtype, atomic files, the artifact
cache, statistics, the machine. Imports nothing else from bench_core."""
