"""``python -m aikit`` runs the command line."""

from .cli import main

main()
