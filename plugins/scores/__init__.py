"""Score estimates: the exact score, the benign ``noisy`` control, the paper's traps (``traps/``) and
learned scores (``learned/``). ``time_forms`` holds the time-t forms and schedules the traps share."""
