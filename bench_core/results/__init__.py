"""A finished run read back: tidy tables, kept views, RunResults. Imports the stages below it."""
