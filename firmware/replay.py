"""Raw log -> frames, through the same sensing pipeline as the live firmware.

The pipeline starts from the calibration the roller started from (the header's
``calibration``: its gyro scale and that scale's weight), or from the datasheets'
nominal values for a log written before the header held it, and numbers its frames as
the roller did (the header's ``boot_id`` and ``first_seq``; 0 for older logs). The
IMU clock's stored ratio needs nothing here: the live driver's use of it (the zone
scans' sensor times, the sample index after a FIFO restart) is in the records already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from firmware.calibration import Calibration
from firmware.protocol import Frame
from firmware.rawlog import open_log, read_records
from firmware.samples import ImuBatch, ZoneScan
from firmware.sensing.pipeline import SensingPipeline


def replay(path: str | Path, salvage: bool = False) -> Iterator[Frame]:
    """Yield the frames a raw log turns into (raises ``RawLogError`` on a bad log)."""
    fh, log = open_log(path)
    with fh:
        start = log.calibration or Calibration()
        pipeline = SensingPipeline(log.config, boot=log.boot_id, first_seq=log.first_seq,
                                   gyro_scale=start.start_scale())
        yield from frames_of(pipeline, read_records(fh, log.config, salvage))


def frames_of(pipeline: SensingPipeline, records: Iterable[tuple[ImuBatch | ZoneScan, float]],
              after_scan: Callable[[SensingPipeline, float], None] | None = None
              ) -> Iterator[Frame]:
    """Yield the frames ``pipeline`` makes of raw ``records`` (a batch of IMU samples or a
    zone scan, with its sensor time s), as the live firmware feeds it; ``after_scan``
    is called with the pipeline and the sensor time after each scan is taken."""
    for item, sensor_t in records:
        if isinstance(item, ZoneScan):
            pipeline.on_scan(item, sensor_t)
            if after_scan is not None:
                after_scan(pipeline, sensor_t)
        else:
            yield from pipeline.on_imu(item)
