"""Showing findings: the HTML report, its figures and views, terminal tables. Imports the stages below it."""
