"""A storing host for the end-to-end tests, run as its own OS process.

Stores every frame it receives as a line ``boot seq backfill`` in a file (flushed and
fsynced before it tells the client the frames are stored, so the roller may drop them),
and on start resumes from the last stored line: what a daemon does, minus the database.

    python -m tests.e2e.storing_host STORE ADDRESS TRANSPORT KEYS SECONDS [--pair]
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from firmware.protocol import Frame, FrameFlag
from host.ble.client import RollerClient
from host.ble.discovery import BleBackend
from host.stream import StreamPosition


def last_position(store: Path) -> StreamPosition | None:
    """The newest stored frame, or None."""
    if not store.exists():
        return None
    lines = store.read_text().split()
    if len(lines) < 3:
        return None
    boot, seq = int(lines[-3]), int(lines[-2])
    return StreamPosition(boot, seq)


async def main(store: Path, address: str, transport: str, keys: str, seconds: float,
               pair: bool) -> None:
    backend = BleBackend.bumble(transport, keys)
    fh = store.open("a")
    client: RollerClient

    def on_frames(frames: list[Frame]) -> None:
        for f in frames:
            fh.write(f"{f.boot} {f.seq} {int(bool(f.flags & FrameFlag.BACKFILL))}\n")
        fh.flush()
        os.fsync(fh.fileno())
        last = frames[-1]
        client.stored(last.seq, last.boot)

    client = RollerClient(backend, on_frames=on_frames, position=last_position(store))
    if pair:
        await client.pair(address)
    await client.connect(address)
    await asyncio.sleep(seconds)
    await client.stop()
    from host.ble.bumble_adapter import close_adapters

    await close_adapters()


if __name__ == "__main__":
    store_, address_, transport_, keys_, seconds_ = sys.argv[1:6]
    asyncio.run(main(Path(store_), address_, transport_, keys_, float(seconds_),
                     "--pair" in sys.argv))
