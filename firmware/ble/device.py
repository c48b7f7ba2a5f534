"""Bumble devices for the roller: on a virtual controller, or on a real one by transport.

The roller advertises and connects with a *static random address*. A host finds its
bond by that address, so it must not change between boots: ``roller_address(path)``
keeps it in a small file (next to the key store) and makes one the first time.
"""

from __future__ import annotations

import os
from pathlib import Path

from bumble.controller import Controller
from bumble.device import Device, DeviceConfiguration
from bumble.hci import Address
from bumble.host import Host
from bumble.transport import Transport, open_transport
from bumble.transport.common import AsyncPipeSink

from firmware.protocol import DEVICE_NAME_PREFIX


def roller_address(path: str | Path) -> Address:
    """The roller's static random address, read from ``path`` or created and saved there."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8").strip()
        return Address(text, Address.RANDOM_DEVICE_ADDRESS)
    except FileNotFoundError:
        pass
    address = Address.generate_static_address()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(address.to_string(False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return address


def _config(address: Address) -> DeviceConfiguration:
    config = DeviceConfiguration()
    config.name = DEVICE_NAME_PREFIX
    config.address = address
    config.classic_enabled = False
    return config


def device_on_controller(controller: Controller, address: Address) -> Device:
    """A Bumble device driving a virtual controller in this process."""
    host = Host(controller, AsyncPipeSink(controller))
    return Device(config=_config(address), host=host)


async def device_on_transport(spec: str, address: Address) -> tuple[Device, Transport]:
    """A Bumble device on an HCI transport (e.g. ``hci-socket:0`` on the Pi).

    Returns the device and the transport (close it when done).
    """
    transport = await open_transport(spec)
    host = Host(transport.source, transport.sink)
    return Device(config=_config(address), host=host), transport
