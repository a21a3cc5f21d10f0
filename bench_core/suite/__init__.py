"""Suite files: the TOML schema and its validation, source lines for messages, paths relative to the suite. Imports base and components."""
