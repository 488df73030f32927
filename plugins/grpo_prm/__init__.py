"""Built-in `prm` plugin (being built; registers nothing yet)."""
