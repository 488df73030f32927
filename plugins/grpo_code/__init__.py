"""Built-in `code` plugin (being built; registers nothing yet)."""
