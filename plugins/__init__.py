"""Built-in plugins of bench, registered exactly like third-party ones."""
