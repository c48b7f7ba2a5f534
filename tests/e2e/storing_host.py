"""A storing host for the end-to-end tests, run as its own OS process.

Stores every frame it receives as a line ``boot seq backfill`` in a file (flushed and
fsynced before it tells the client the frames are stored, so the roller may drop them),
and on start resumes from what it stored: what a daemon does, minus the database.

Frames come in arrival order: live frames at once, journal backfill when it comes, so a
backfill frame may come after later live frames. Each batch is written sorted by
(boot, seq); the file as a whole is in arrival order. After each batch the client's
contiguous prefix (``RollerClient.position``: every frame up to it is stored) is saved
in ``STORE.pos``; on start that is the position, and the frames stored beyond it are
passed as ``ahead`` so that none comes twice.

    python -m tests.e2e.storing_host STORE ADDRESS TRANSPORT KEYS SECONDS [--pair]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from bleak.exc import BleakError

from firmware.protocol import Frame, FrameFlag
from host.ble.client import RollerClient
from host.ble.discovery import BleBackend
from host.stream import StreamPosition


def position_file(store: Path) -> Path:
    """Where the contiguous stored prefix of ``store`` is kept."""
    return store.with_name(store.name + ".pos")


def stored_position(store: Path) -> tuple[StreamPosition | None, list[int]]:
    """The saved contiguous prefix (None if none) and the seqs of its boot stored
    beyond it."""
    pos = position_file(store)
    if not pos.exists():
        return None, []
    boot, seq = map(int, pos.read_text().split())
    ahead: list[int] = []
    if store.exists():
        for line in store.read_text().splitlines():
            fields = line.split()
            if len(fields) == 3 and int(fields[0]) == boot and int(fields[1]) > seq:
                ahead.append(int(fields[1]))
    return StreamPosition(boot, seq), ahead


def save_position(store: Path, position: StreamPosition) -> None:
    """Replace the saved prefix atomically (it never claims more than is stored: it is
    written after the frames, and a stale one is only older)."""
    pos = position_file(store)
    tmp = pos.with_name(pos.name + ".tmp")
    tmp.write_text(f"{position.boot_id} {position.last_seq}\n")
    os.replace(tmp, pos)


async def main(store: Path, address: str, transport: str, keys: str, seconds: float,
               pair: bool) -> None:
    backend = BleBackend.bumble(transport, keys)
    fh = store.open("a")
    client: RollerClient

    def on_frames(frames: list[Frame]) -> None:
        top: dict[int, int] = {}
        for f in sorted(frames, key=lambda f: (f.boot, f.seq)):
            fh.write(f"{f.boot} {f.seq} {int(bool(f.flags & FrameFlag.BACKFILL))}\n")
            top[f.boot] = f.seq
        fh.flush()
        os.fsync(fh.fileno())
        for boot, seq in top.items():
            client.stored(seq, boot)
        if client.position is not None:
            save_position(store, client.position)

    position, ahead = stored_position(store)
    client = RollerClient(backend, on_frames=on_frames, position=position, ahead=ahead)
    if pair:
        await client.pair(address)
    started = time.monotonic()
    for attempt in range(4):  # a roller still dropping the killed host's link may be slow
        try:
            await client.connect(address)
            break
        except (TimeoutError, BleakError):
            if attempt == 3:
                raise
    await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
    await client.stop()
    from host.ble.bumble_adapter import close_adapters

    await close_adapters()


if __name__ == "__main__":
    store_, address_, transport_, keys_, seconds_ = sys.argv[1:6]
    asyncio.run(main(Path(store_), address_, transport_, keys_, float(seconds_),
                     "--pair" in sys.argv))
