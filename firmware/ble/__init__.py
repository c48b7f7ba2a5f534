"""The roller's Bluetooth LE side, on Bumble (docs/bluetooth.md).

- ``server``: ``RollerServer``, the GATT server on a Bumble ``Device`` (advertising,
  security, streaming, status); ``services``: the GATT table.
- ``pairing``: the pairing window, the pairing policy, the bond check.
- ``stream``: ``HostStream``, one host's live stream and paced journal backfill.
- ``control``: ``ControlPoint``, control-point requests -> firmware actions.
- ``link``: the virtual radio (``RadioLink``, ``RadioController``, ``HostAdapter``).
- ``device``: Bumble devices on a virtual or real controller; the roller's address.
- ``simcli``: ``smartroller-fw sim --host-adapter``; ``runner``: on the Pi.

Importing this package does not import Bumble; the modules do.
"""
