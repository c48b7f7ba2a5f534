"""Removing a roller's bond: from a Bumble key store file, or from the OS through bleak.

The Bumble backend keeps bonds in a ``JsonKeyStore`` file (``{namespace: {peer address:
keys}}``; ``smartroller pair --keys FILE``, default ``default_key_store_path()``);
``remove_bumble_bond`` deletes a peer from every namespace of it, atomically, without
opening a controller. bleak's native backends keep bonds in the OS: ``unpair_native``
asks bleak (BlueZ and WinRT can; CoreBluetooth cannot: ``BondRemovalUnsupported``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from host.paths import atomic_write_text

__all__ = ["BondRemovalUnsupported", "bumble_bonds", "remove_bumble_bond", "unpair_native"]


class BondRemovalUnsupported(Exception):
    """This platform's Bluetooth stack gives no way to remove a bond from a program."""


def _names(address: str) -> set[str]:
    base = address.upper().removesuffix("/P")
    return {base, base + "/P"}


def bumble_bonds(key_store: Path) -> dict[str, list[str]]:
    """The peers with keys in ``key_store``, per namespace ({} if there is no file).
    ValueError if the file is not a key store."""
    try:
        text = key_store.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        db = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{key_store} is not a Bumble key store: {exc}") from None
    if not isinstance(db, dict) or not all(isinstance(v, dict) for v in db.values()):
        raise ValueError(f"{key_store} is not a Bumble key store")
    return {ns: list(peers) for ns, peers in db.items()}


def remove_bumble_bond(key_store: Path, address: str) -> int:
    """Delete ``address``'s keys (random or public, ``/P``) from every namespace of the
    key store file; returns how many entries went. The file is replaced atomically."""
    bumble_bonds(key_store)  # validates
    if not key_store.exists():
        return 0
    db = json.loads(key_store.read_text(encoding="utf-8"))
    names = _names(address)
    removed = 0
    for peers in db.values():
        for name in [n for n in peers if n.upper() in names]:
            del peers[name]
            removed += 1
    if removed:
        atomic_write_text(key_store, json.dumps(db, sort_keys=True, indent=4))
    return removed


async def unpair_native(address: str, adapter: str | None = None,
                        timeout_s: float = 15.0) -> None:
    """Remove the OS's bond with ``address`` through bleak's native backend
    (``adapter``: "hci1" on BlueZ). BondRemovalUnsupported where bleak cannot
    (CoreBluetooth); BleakError, OSError or TimeoutError when the stack refuses."""
    from bleak import BleakClient

    kwargs = {"bluez": {"adapter": adapter}} if adapter else {}
    client = BleakClient(address, **kwargs)
    try:
        await asyncio.wait_for(client.unpair(), timeout_s)
    except NotImplementedError:
        raise BondRemovalUnsupported("this system's Bluetooth stack cannot remove a bond "
                                     "from a program") from None
