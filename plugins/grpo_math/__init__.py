"""Built-in `math` plugin (being built; registers nothing yet)."""
