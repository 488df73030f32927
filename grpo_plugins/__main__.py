"""``python -m grpo_plugins`` runs the command line."""

from .cli import main

main()
