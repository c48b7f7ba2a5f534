"""``python -m host.cli``: the same as the ``smartroller`` command."""

from host.cli.main import main

main()
