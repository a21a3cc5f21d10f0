"""One cell: the runner and what a cell records (cost, timeout, kept samples, sample views). Imports base, components, suite and plan."""
