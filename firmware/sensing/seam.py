"""The bands' seams: which contact patch of each ADC channel lies on the dead arc.

A patch on a band's seam (the dead arc, ``zones.dead_arc_deg`` wide about
``zones.seam_angle_deg`` for the top patch, 180 deg on for the floor's) conducts nothing,
so the band reads half its body load and the reading must be doubled. The odometry's
angle alone calls this wrongly near the arc's four edges: its gravity reference sits a
few tenths of a degree off the true turn (more at some angles than others, from the
accelerometer's gains), the angle is a few milliseconds older than the scan, and the
pipelined scan samples its first channel one scan period before the others. At a brisk
roll (~3 deg a scan) that misreads about one scan in twenty on the arc, each read double
or half.

So near an edge the loads call it themselves. A channel (AIN k of every ADC: its zones
are sampled together) whose reading halves from one scan to the next while the angle
moves into the arc went dead; one that doubles while it moves out went live; otherwise
it keeps its last call. The step is a factor of two and instant, where a body's load
on a band changes by a few per cent a scan. Away from the edges, with too little load
on the channel to show a step, or after a missed scan, the angle's call stands.
"""

from __future__ import annotations

import math

from firmware.config import ZonesConfig

__all__ = ["BOTTOM", "LIVE", "TOP", "SeamCall"]

LIVE, TOP, BOTTOM = 0, 1, 2
"""A channel's call: no patch on the dead arc, the top (back) patch, the bottom (floor)."""

EDGE_BAND_DEG = 2.0
"""Within this of an edge (plus the turn over one scan period) the loads' step calls, deg."""
STEP = 0.7
"""A reading below this share of the last scan's went dead; above its inverse, live."""
MIN_STEP_N = 10.0
"""A channel reading less than this (either scan) shows no step it can be trusted on, N."""
MOVING_RAD_S = 0.02
"""Slower than this the roller is parked: no patch crosses an edge, rad/s."""
_TWO_PI = 2.0 * math.pi


class SeamCall:
    """Per ADC channel, which patch lies on the seam's dead arc, scan by scan.

    zones: the strip's profile (seam angle, dead arc, zone count; zone i is channel
    ``i % 4``); scan_period_s: the time between scans, s.
    """

    def __init__(self, zones: ZonesConfig, scan_period_s: float) -> None:
        self.seam = math.radians(zones.seam_angle_deg)
        self.half = math.radians(zones.dead_arc_deg) / 2.0
        self.channels = min(4, zones.count)
        self.scan_period = scan_period_s
        self.band = math.radians(EDGE_BAND_DEG)
        self.state = [LIVE] * self.channels
        """The last call per channel (``LIVE``, ``TOP`` or ``BOTTOM``)."""
        self._sums = [0.0] * self.channels
        self._t = -math.inf

    def by_angle(self, angle: float) -> int:
        """The angle's own call at roll angle ``angle`` (rad)."""
        past = (angle - self.seam) % _TWO_PI  # the top patch's turn past its seam
        half = self.half
        if past <= half or _TWO_PI - past <= half:
            return TOP
        return BOTTOM if abs(past - math.pi) <= half else LIVE

    def calls(self, angle: float, rate: float, sums: list[float], t: float) -> list[int]:
        """The calls for a scan at sensor time ``t`` (s), the roll angle then ``angle``
        (rad) turning at ``rate`` (rad/s), each channel's readings summed over its ADCs
        as if no patch were dead (``sums``, N). Returns ``state``."""
        past = (angle - self.seam) % _TWO_PI
        top_off = past if past <= math.pi else _TWO_PI - past  # the top patch from its seam
        bottom_off = abs(past - math.pi)  # the bottom patch from its seam
        if top_off <= bottom_off:
            kind, off = TOP, top_off
            inward = rate < 0.0 if past <= math.pi else rate > 0.0  # toward its seam
        else:
            kind, off = BOTTOM, bottom_off
            inward = rate < 0.0 if past >= math.pi else rate > 0.0
        called = kind if off <= self.half else LIVE
        state, last = self.state, self._sums
        near = abs(off - self.half) <= self.band + abs(rate) * self.scan_period
        if not near or t - self._t > 2.5 * self.scan_period:
            for c in range(self.channels):
                state[c] = called
        else:
            moving = abs(rate) >= MOVING_RAD_S
            for c in range(self.channels):
                now, before, was = sums[c], last[c], state[c]
                if was != LIVE and was != kind or now < MIN_STEP_N or before < MIN_STEP_N:
                    new = called  # (a call from the other patch's arc is stale)
                elif was == LIVE:
                    new = kind if moving and inward and now < STEP * before else LIVE
                else:
                    new = LIVE if moving and not inward and now * STEP > before else was
                state[c] = new
        for c in range(self.channels):
            last[c] = sums[c]
        self._t = t
        return state
