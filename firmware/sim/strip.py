"""The simulated pressure strip: FSR bands in voltage dividers, with their flaws.

Each band is one force-sensing resistor wrapped around the roller, from the supply Vs to
the ADC input, with the divider resistor R_div from the input to ground:
``V = Vs * G R_div / (1 + G R_div)``, G the band's conductance. The body load passes
through the band twice, at the top contact (the back) and the bottom contact (the floor);
each contact patch adds conductance ``s/2 * F`` in parallel (s: the band's sensitivity,
S/N, for the load carried by both patches). A patch on the band's seam adds nothing.

Flaws (Interlink FSR 400 class, DESIGN.md section 4):

- part-to-part spread: true sensitivity = calibration * (1 + N(0, part_spread));
- open below ``THRESHOLD_N`` (0.2 N) per patch;
- hysteresis, rate-independent (a backlash/"play" operator per patch): the effective
  force follows the force at once on loading, and on unloading stays up to
  ``hysteresis`` above it, so the reading is higher on unloading than loading;
- creep: under a held load the conductance grows by ``creep_per_decade`` per decade of
  time since the patch was loaded (from ``CREEP_ONSET_S``); it resets when unloaded.

The hysteresis and creep state belongs to the contact patch, not to the band material
that rolls under it (a simplification).
"""

from __future__ import annotations

import math

import numpy as np

from firmware.config import ZonesConfig

THRESHOLD_N = 0.2
"""Patch force below which the FSR is open (no conductance), N."""
CREEP_ONSET_S = 1.0
"""Time scale of creep: factor 1 + c * log10(1 + t_loaded / CREEP_ONSET_S)."""


def dead_patches(roll_angle_rad: float, seam_angle_deg: float,
                 dead_arc_deg: float) -> tuple[bool, bool]:
    """Which patches (top, bottom) lie on the seam's dead arc at this roll angle (rad)."""
    half = math.radians(dead_arc_deg) / 2.0
    seam = math.radians(seam_angle_deg)

    def on_arc(centre: float) -> bool:
        gap = (roll_angle_rad - centre + math.pi) % (2.0 * math.pi) - math.pi
        return abs(gap) <= half

    return on_arc(seam), on_arc(seam + math.pi)


class FsrStrip:
    """The physical strip of ``zones.count`` FSR bands (ground truth for the simulator).

    zones: the hardware profile (calibration, divider, supply, seam).
    rng: draws the part-to-part spread.
    part_spread: relative SD of true vs calibrated sensitivity (datasheet +-6 %).
    hysteresis: fraction by which unloading reads above loading (~0.10).
    creep_per_decade: conductance drift per decade of time under load (< 0.05).
    """

    def __init__(self, zones: ZonesConfig, rng: np.random.Generator, *,
                 part_spread: float = 0.06, hysteresis: float = 0.10,
                 creep_per_decade: float = 0.04) -> None:
        self.zones = zones
        calibration = np.asarray(zones.sensitivity_s_per_n, dtype=float)
        spread = rng.normal(0.0, part_spread, calibration.shape) if part_spread > 0 else 0.0
        self.sensitivity_s_per_n = calibration * np.clip(1.0 + spread, 0.5, 1.5)
        """True sensitivity of each band, S/N (both patches loaded)."""
        self.hysteresis = hysteresis
        self.creep_per_decade = creep_per_decade
        n = zones.count
        self._held = np.zeros((n, 2))                 # play-operator output per patch, N
        self._loaded_since = np.full((n, 2), math.nan)  # when each patch closed, s
        self._last_t = np.full(n, -math.inf)

    @classmethod
    def calibrated(cls, zones: ZonesConfig, rng: np.random.Generator | None = None, *,
                   hysteresis: float = 0.10, creep_per_decade: float = 0.04) -> FsrStrip:
        """A strip whose true sensitivities equal the profile's calibration."""
        return cls(zones, rng or np.random.default_rng(0), part_spread=0.0,
                   hysteresis=hysteresis, creep_per_decade=creep_per_decade)

    def patch_forces(self, loads_n: np.ndarray, roll_angle_rad: float) -> np.ndarray:
        """(count, 2) forces on the (top, bottom) patches, N, for body loads per band (N).

        Both patches carry the body load; the one on the seam's dead arc carries none.
        """
        loads = np.asarray(loads_n, dtype=float)
        top_dead, bottom_dead = dead_patches(roll_angle_rad, self.zones.seam_angle_deg,
                                             self.zones.dead_arc_deg)
        return np.stack([loads * (not top_dead), loads * (not bottom_dead)], axis=1)

    def band_conductance(self, band: int, t: float,
                         patch_forces_n: tuple[float, float]) -> float:
        """Conductance of band ``band`` at time t (s) under (top, bottom) forces (N), S.

        Advances the band's hysteresis and creep state; t should not decrease (an
        earlier t counts as the latest one).
        """
        t = max(t, self._last_t[band])
        self._last_t[band] = t
        g = 0.0
        half_s = 0.5 * self.sensitivity_s_per_n[band]
        for patch in (0, 1):
            force = max(float(patch_forces_n[patch]), 0.0)
            held = min(max(self._held[band, patch], force), force * (1.0 + self.hysteresis))
            self._held[band, patch] = held
            if force < THRESHOLD_N:
                self._loaded_since[band, patch] = math.nan
                continue
            since = self._loaded_since[band, patch]
            if math.isnan(since):
                since = self._loaded_since[band, patch] = t
            creep = 1.0 + self.creep_per_decade * math.log10(1.0 + (t - since) / CREEP_ONSET_S)
            g += half_s * held * creep
        return g

    def band_voltage(self, band: int, t: float, patch_forces_n: tuple[float, float]) -> float:
        """Divider output (ADC input) of band ``band`` at time t (s), V."""
        g_r = self.band_conductance(band, t, patch_forces_n) * self.zones.divider_resistor_ohm
        return self.zones.supply_v * g_r / (1.0 + g_r)

    def voltages(self, t: float, patch_forces: np.ndarray) -> np.ndarray:
        """Divider outputs of every band at time t (s) for (count, 2) patch forces (N), V."""
        if np.shape(patch_forces) != (self.zones.count, 2):
            raise ValueError(f"patch_forces: expected shape ({self.zones.count}, 2)")
        return np.array([self.band_voltage(band, t, (row[0], row[1]))
                         for band, row in enumerate(patch_forces)])


__all__ = ["CREEP_ONSET_S", "THRESHOLD_N", "FsrStrip", "dead_patches"]
