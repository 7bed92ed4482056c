"""``python -m zoo`` runs the command line (the same as the ``zoo`` script)."""
from zoo.cli import main

main()
