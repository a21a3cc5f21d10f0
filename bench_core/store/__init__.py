"""What a run keeps on disk: the SQLite store of cell results. Imports the stages below it."""
