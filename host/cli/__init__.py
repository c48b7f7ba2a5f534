"""``smartroller``, the laptop's command line: the parser and one module per group of
commands.

- ``main``: the parser, ``demo`` and ``bench`` dispatch, ``main()``.
- ``sessions``: sessions, show, export, report, profile, devices, forget.
- ``devices``: scan, pair, stream (the Bluetooth commands).
- ``daemon``: daemon, live, calibrate.
- ``demo``: the whole product on a simulated roller over the virtual radio.
- ``progress``: a progress line on a terminal.

Errors are one line on stderr and exit status 2.
"""
