"""Raw log -> frames, through the same sensing pipeline as the live firmware."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from firmware.protocol import Frame
from firmware.rawlog import open_log, read_records
from firmware.samples import ZoneScan
from firmware.sensing.pipeline import SensingPipeline


def replay(path: str | Path, salvage: bool = False) -> Iterator[Frame]:
    """Yield the frames a raw log turns into (raises ``RawLogError`` on a bad log)."""
    fh, log = open_log(path)
    with fh:
        pipeline = SensingPipeline(log.config)
        for item, sensor_t in read_records(fh, log.config, salvage):
            if isinstance(item, ZoneScan):
                pipeline.on_scan(item, sensor_t)
            else:
                yield from pipeline.on_imu(item)
