"""Run the firmware with its GATT server on a real controller (the Raspberry Pi).

``await serve(firmware, journal, "hci-socket:0", state_dir=...)`` opens the HCI
transport (bluetoothd stopped, hci0 down, CAP_NET_ADMIN + CAP_NET_RAW: see
docs/bluetooth.md, "On the Pi"), starts the ``RollerServer`` and runs the firmware
loop in the same event loop until ``should_stop()`` or cancellation. The firmware
should have been made with ``first_seq=journal.next_seq`` so seqs go on across boots.
Under systemd (``Type=notify``) it reports ``READY=1`` once advertising and the loop
runs, ``WATCHDOG=1`` from the loop (``firmware.sdnotify``), ``STOPPING=1`` at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from firmware import sdnotify
from firmware.ble.device import device_on_transport, roller_address
from firmware.ble.server import RollerServer
from firmware.files import private_dir

if TYPE_CHECKING:
    from firmware.app import Firmware
    from firmware.journal import Journal

log = logging.getLogger("smartroller.ble")

PI_STATE_DIR = Path("/var/lib/smartroller")
"""Default home of the roller's address file and key store on the Pi."""


async def serve(firmware: Firmware, journal: Journal, transport: str = "hci-socket:0", *,
                state_dir: Path = PI_STATE_DIR, passkey: int | None = None,
                pairing_window_s: float = 60.0,
                should_stop: Callable[[], bool] | None = None) -> None:
    """Run ``firmware`` with its GATT server on the controller at ``transport``.

    state_dir: the roller's static address (``address``) and bonds (``keys.json``).
    passkey: static 6-digit passkey (MITM-protected pairing), None: Just Works.
    Closes the firmware, the journal and the transport at the end.
    """
    private_dir(state_dir)  # 0700: the bonds are in it
    device, hci = await device_on_transport(transport, roller_address(state_dir / "address"))
    server = RollerServer(device, firmware, journal, keystore_path=state_dir / "keys.json",
                          passkey=passkey, pairing_window_s=pairing_window_s)
    try:
        await server.start()
        log.info("%s on %s", server.name, transport)
        firmware.start()
        sdnotify.notify(f"READY=1\nSTATUS=advertising as {server.name}")
        await firmware.run_async(sdnotify.Watchdog().wrap(should_stop))
    finally:
        sdnotify.notify("STOPPING=1")
        await server.stop()
        firmware.close()
        journal.close()
        await hci.close()
