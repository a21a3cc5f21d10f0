"""Executors: where cells run (``local``, ``process``, ``ray``); all give identical numbers."""
