"""Bluetooth LE on the host: a bleak backend on Bumble and the roller's client.

- ``bumble_backend``: ``BleakScannerBumble``, ``BleakClientBumble`` (bleak's backend
  interfaces on a Bumble Device over any Bumble transport).
- ``client``: ``RollerClient``, speaking only bleak's public API.
- ``bonds``: removing a bond (Bumble's key store, BlueZ).
"""
