"""``python -m sparsesync_cli`` runs the ``avsync`` command."""

from .cli import main

main()
