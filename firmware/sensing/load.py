"""Zone loads: ADS1115 codes of the FSR dividers -> body load per zone, N.

Each zone is an FSR band (conductance G) from the supply Vs to the ADC input with R_div
to ground, so ``V = Vs * G R_div / (1 + G R_div)`` and ``G = V / (R_div (Vs - V))``.
The calibration ``sensitivity_s_per_n`` is the band's conductance per newton of body
load with both contact patches (back on top, floor below) carrying it, so ``F = G / s``.
When one patch lies on the band's seam (the dead arc) only the other conducts, and the
reading is doubled if the roll angle is known.
"""

from __future__ import annotations

import math

import numpy as np

from firmware.config import ZonesConfig

SATURATION_MARGIN = 0.01
"""Fraction of Vs below the supply above which a zone reads its maximum force."""


class ZoneLoads:
    """Converts raw zone codes to forces.

    zones: the strip's profile (divider, supply, calibration, seam).
    full_scale_v: the ADC's PGA range, +-V (LSB = full_scale_v / 32768).
    """

    def __init__(self, zones: ZonesConfig, full_scale_v: float) -> None:
        self.zones = zones
        self.lsb_v = full_scale_v / 32768.0
        self.supply_v = zones.supply_v
        self.divider_ohm = zones.divider_resistor_ohm
        self.sensitivity_s_per_n = np.asarray(zones.sensitivity_s_per_n, dtype=float)
        self.limit_v = min(self.supply_v * (1.0 - SATURATION_MARGIN), 32767 * self.lsb_v)
        """Divider voltage at and above which a zone is saturated, V."""
        g_max = self.limit_v / (self.divider_ohm * (self.supply_v - self.limit_v))
        self.max_force_n = g_max / self.sensitivity_s_per_n
        """Largest measurable force per zone, N (what a saturated zone reads)."""
        self._per_volt = (1.0 / (self.divider_ohm * self.sensitivity_s_per_n)).tolist()
        self._per_volt_doubled = [2.0 * k for k in self._per_volt]  # on the dead arc
        self._seam = math.radians(zones.seam_angle_deg)
        self._half_arc = math.radians(zones.dead_arc_deg) / 2.0

    def forces(self, raw: np.ndarray, roll_angle_rad: float | None = None) -> np.ndarray:
        """Body load on each zone, N, from its (zones,) int16 codes.

        roll_angle_rad: roller angle (rad); if given and a contact patch lies on the
        seam's dead arc, the forces are doubled (only one patch conducts).
        """
        dead = roll_angle_rad is not None and any(self.dead_patches(roll_angle_rad))
        return np.array(self.forces_list(np.asarray(raw).tolist(), dead))

    def forces_list(self, raw: list[int], dead_arc: bool = False) -> list[float]:
        """``forces`` on plain lists: for 8 zones on a Pi, cheaper than numpy's overhead;
        ``dead_arc``: a contact patch lies on the seam's dead arc (``dead_patches``)."""
        per_volt = self._per_volt_doubled if dead_arc else self._per_volt
        if len(raw) != len(per_volt):
            raise ValueError(f"{len(raw)} codes for {len(per_volt)} zones")
        lsb, limit, supply = self.lsb_v, self.limit_v, self.supply_v
        out: list[float] = []
        append = out.append
        # (zip without ``strict``: the lengths are checked above, and its keyword costs
        # more than the loop's own work, 50 times a second on a Pi)
        for code, k in zip(raw, per_volt):  # noqa: B905
            if code <= 0:
                append(0.0)
                continue
            volts = code * lsb
            if volts > limit:
                volts = limit
            append(k * volts / (supply - volts))
        return out

    def dead_patches(self, roll_angle_rad: float) -> tuple[bool, bool]:
        """Which contact patches, (top = the back, bottom = the floor), lie on the seam's
        dead arc at this roll angle (rad)."""
        past = (roll_angle_rad - self._seam) % (2.0 * math.pi)  # the top's turn past it
        half = self._half_arc
        return (past <= half or 2.0 * math.pi - past <= half,
                abs(past - math.pi) <= half)

    @staticmethod
    def total(forces: np.ndarray) -> float:
        """Total load over the zones, N."""
        return float(np.sum(forces))


__all__ = ["CREEP_PER_DECADE", "SATURATION_MARGIN", "FsrCreep", "FsrHysteresis",
           "ZoneLoads"]


class FsrHysteresis:
    """Undoes the FSRs' loading/unloading hysteresis, modelled as backlash (a play).

    An FSR reads its force on the loading branch but up to ``fraction`` higher on the
    unloading branch (~10 %, DESIGN.md section 4). Per zone: a reading that rose (by
    more than ``deadband_n``) is on the loading branch and is the force; one that fell is
    on the unloading branch, ``reading / (1 + fraction)``; one that held still keeps the
    previous force, bounded by the two branches. Left alone, the error follows the
    stroke's push and, through the rolling radius, becomes position drift.

    A reading that holds still tells only that the force lies between the branches: a
    force falling by less than the play leaves the reading where it was. Where a zone's
    load last rose while the roller rolled one way (the push of a stroke, the body's
    shape under the band), rolling back is taken to retrace it (``velocity_m_s`` given):
    a held reading is then on the unloading branch, but not below the force the rise
    began from; rolling that way again, it is on the loading branch. Without that, a
    load that falls on every return stroke within the play reads as its top on the way
    back, the rolling radius as too small in one direction only, and the position
    drifts by ~1 mm a minute (docs/benchmarks.md, issue 16). How far back it retraces
    cannot be read while the reading holds (a push within the play leaves it flat), so
    it is taken as ``RETRACE_SHARE`` of the play: retracing all of it read the push of a
    person whose push is about the play as the whole play, and the position ratcheted
    the other way (6.8 mm over 30 minutes, 9.2 with the creep undone; docs/benchmarks.md,
    "The FSRs' creep, compensated").
    """

    ROLLING_M_S = 0.02
    """Speed (m/s) above which the roller counts as rolling one way."""
    RETRACE_SHARE = 0.5
    """Share of the play a held reading is taken to retrace when the roll reverses: the
    simulated people's push (6-16 % peak to peak) is within the 10 % play for some and
    past it for others; half is the middle (a prior, not measured on a real person)."""

    def __init__(self, count: int, fraction: float = 0.10, deadband_n: float = 0.2) -> None:
        self.fraction = fraction
        self.deadband = deadband_n
        self._reading = [0.0] * count
        self._force = [0.0] * count
        self._rose = [0] * count  # +1/-1: the way the roller rolled when the load last
        # rose (0: not known), for the zone
        self._rising = [False] * count  # the zone's load is on a rise
        self._floor = [0.0] * count  # the force the last rise began from, N

    def unwind(self, readings: np.ndarray, velocity_m_s: float = 0.0) -> np.ndarray:
        """Forces (N) for the zone readings (N) of one scan, the roller rolling at
        ``velocity_m_s`` (m/s, the position's sign; 0: not known)."""
        return np.array(self.unwind_list(np.asarray(readings, dtype=float).tolist(),
                                         velocity_m_s))

    def unwind_list(self, readings: list[float], velocity_m_s: float = 0.0) -> list[float]:
        """``unwind`` on plain lists (the firmware's per-scan path)."""
        deadband, low_factor = self.deadband, 1.0 / (1.0 + self.fraction)
        retrace_factor = 1.0 / (1.0 + self.RETRACE_SHARE * self.fraction)
        last_readings, forces = self._reading, self._force
        rose, rising, floor = self._rose, self._rising, self._floor
        if len(readings) != len(forces):
            raise ValueError(f"{len(readings)} readings for {len(forces)} zones")
        way = 0
        if velocity_m_s > self.ROLLING_M_S:
            way = 1
        elif velocity_m_s < -self.ROLLING_M_S:
            way = -1
        i = 0
        for reading, last, force in zip(readings, last_readings, forces):  # noqa: B905
            # (lengths checked above)
            if reading > last + deadband:       # loading branch: the reading is the force
                if not rising[i]:
                    floor[i], rising[i] = force, True
                if way:
                    rose[i] = way
                forces[i] = last_readings[i] = reading
            elif reading < last - deadband:     # unloading branch
                forces[i] = reading * low_factor
                last_readings[i] = reading
                rising[i] = False
            else:                               # held still: within the two branches
                if force > reading:
                    force = reading
                elif force < reading * low_factor:
                    force = reading * low_factor
                if way and rose[i] == -way:     # rolling back: the rise retraced
                    retraced = max(reading * retrace_factor, floor[i])
                    if retraced < force:
                        force = retraced
                    rising[i] = False
                elif way and rose[i] == way:    # rolling the rise's way again: re-risen
                    force = reading
                forces[i] = force
            i += 1
        return forces[:]


CREEP_PER_DECADE = 0.025
"""The FSRs' creep undone by default (the profile's ``zones.creep_per_decade``):
conductance up by this fraction per decade of time under a steady load. The data sheet
(Interlink FSR 400: drift < 5 % per log10(time)) bounds it, it does not give it; the
middle of 0-5 % leaves at most 2.5 % a decade on any strip within it, half of what is
left uncorrected (docs/algorithms.md, zone loads)."""
CREEP_ONSET_S = 1.0
"""Time scale of creep, s: the factor is ``1 + c log10(1 + t_loaded / CREEP_ONSET_S)``."""
CREEP_REFRESH_S = 1.0
"""A loaded patch's creep factor is computed again this often, s (it changes by less
than 0.1 % a second after its first seconds; a patch that unloads starts again at once)."""


class FsrCreep:
    """Undoes the FSRs' creep: under a held load a band's conductance grows by
    ``coefficient`` per decade of time since its contact patch was loaded.

    A band conducts through two contact patches, the top (the back) and the bottom (the
    floor); each creeps from when it was last loaded. A patch unloads on the seam's dead
    arc (known from the roll angle) and the top one also when the zone's body load falls
    to ``unloaded_n``; the bottom one carries the roller's own weight from boot. Each
    reading (N, the dead arc's doubling done) is divided by the mean creep factor of the
    patches that conduct. Cheap per scan: the factors (a log10 each) are refreshed every
    ``CREEP_REFRESH_S`` and at once when a patch is loaded anew.
    """

    def __init__(self, count: int, coefficient: float = CREEP_PER_DECADE,
                 unloaded_n: float = 0.5) -> None:
        self.coefficient = coefficient
        self.unloaded_n = unloaded_n
        self._top_since: list[float | None] = [None] * count  # when each patch was
        self._bottom_since: list[float | None] = [None] * count  # loaded, sensor s
        self._top = [1.0] * count  # creep factors
        self._bottom = [1.0] * count
        self._refresh_t = -math.inf  # when the factors were last computed, sensor s

    def factor(self, since: float, t: float) -> float:
        """Creep factor of a patch loaded since ``since`` at time ``t`` (s)."""
        return 1.0 + self.coefficient * math.log10(1.0 + max(t - since, 0.0) / CREEP_ONSET_S)

    def undo_list(self, readings: list[float], tare: list[float], t: float,
                  dead: tuple[bool, bool]) -> list[float]:
        """Readings (N) with the creep taken out, at sensor time ``t`` (s); ``tare``: the
        empty roller's reading per zone (N), ``dead``: (top, bottom) patches on the dead
        arc (``ZoneLoads.dead_patches``)."""
        top_dead, bottom_dead = dead
        tops, bottoms = self._top_since, self._bottom_since
        top_f, bottom_f = self._top, self._bottom
        refresh = t >= self._refresh_t + CREEP_REFRESH_S
        if refresh:
            self._refresh_t = t
        factor, unloaded = self.factor, self.unloaded_n
        out: list[float] = []
        append = out.append
        for i, reading in enumerate(readings):
            top = tops[i]
            if top_dead or reading - tare[i] < unloaded:
                top = tops[i] = None
            elif top is None:
                top = tops[i] = t
                top_f[i] = 1.0
            elif refresh:
                top_f[i] = factor(top, t)
            bottom = bottoms[i]
            if bottom_dead:
                bottom = bottoms[i] = None
            elif bottom is None:
                bottom = bottoms[i] = t
                bottom_f[i] = 1.0
            elif refresh:
                bottom_f[i] = factor(bottom, t)
            if top is None:
                append(reading if bottom is None else reading / bottom_f[i])
            elif bottom is None:
                append(reading / top_f[i])
            else:
                append(2.0 * reading / (top_f[i] + bottom_f[i]))
        return out
