"""``python -m aikit`` runs the command line."""

from aikit.cli import main

main()
