"""The daemon: keeps the paired rollers (``keeper``: sessions, live analysis, commands
back, the store) and publishes what it sees (``live``: the status files that
``smartroller live`` and ``calibrate`` read). See docs/daemon.md."""
