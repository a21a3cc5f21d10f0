"""A finished run read back: tidy tables, results.parquet, kept views, RunResults, what differs between two
runs. Imports the stages below it."""
