"""The gyro's scale along the roller axis, fitted to gravity's angle while the roller rolls.

What the gyro counts as turn is the true turn times its sensitivity (+-3 %, MPU-6050
product spec rev 3.4, 6.1) and its sample clock (+-1 %, 6.5: the odometry integrates
with the nominal sample period). Gravity is an absolute angle reference, but the
accelerometer bends it: its zero-g offsets by a first harmonic of the angle (up to
~5 deg), its unequal gains and cross-axis terms by a second harmonic (up to ~1.7 deg).
Upper-back rolling turns the roller through an arc of ~3-4 rad, never whole turns, so
over such an arc a harmonic's slope passes for a scale (8 % for the offsets alone)
unless the fit models it.

Model (``fit_windows``), over windows of ``WINDOW_S`` of quasi-static batches (gravity
within 10 % of 1 g, a slow roll; the axle's and the IMU's motion terms already removed
by the odometry): the in-plane specific force is ``a = M g(theta) + b`` with ``g(theta)
= G (sin, cos)``, ``M`` the accelerometer's symmetric 2x2 distortion (its antisymmetric
part is a rotation: a constant angle), ``b`` the zero-g offsets, and ``theta = c0 + c1 t
+ s gamma``: ``gamma`` the gyro's own turn (offset removed, nominal scale), ``s`` the
scale wanted (true turn per counted turn), ``c0, c1`` each window's own (the gyro's
angle drifts between windows with what is left of its offset). ``s``, ``b`` and ``M``
are shared by the last ``KEEP`` windows: Gauss-Newton on the normal equations, in numpy,
when a window closes, warm-started from the last fit (one or two iterations: ~1 ms per
fit on a laptop core). A fit counts when the windows turned through ``MIN_ARC_RAD`` and
its scale's standard error is within ``MAX_SD``; its weight is ``1 / (sd^2 +
FLOOR^2)`` (``FLOOR``: what is left of the accelerometer's bias, measured), combined
with the stored scale's, clamped to ``LIMIT`` around 1 (the datasheet's +-3 %
sensitivity and +-1 % clock).

Docs: docs/algorithms.md, "Roll odometry", step 10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

G = 9.80665
LIMIT = 0.04
"""The scale stays within 1 +- this (sensitivity +-3 %, sample clock +-1 %)."""
WINDOW_S = 30.0
"""Length of one fit's window, s."""
EVERY = 10
"""Take every this many-th quasi-static batch into a window (at most 5 Hz at 50 batches/s)."""
MIN_ARC_RAD = 1.0
"""A window's gyro turn must span this much angle to tell the scale from the harmonics."""
MAX_SD = 0.004
"""A window's scale counts if its standard error is within this."""
FLOOR = 0.003
"""Bias of one window's scale left by what the model lacks (measured), added in quadrature."""
QUASI_STATIC_RAD_S = 1.0
KEEP = 8
"""Windows kept for the joint fit (the last 4 minutes of rolling)."""
"""Batches turning faster than this are not taken (their motion terms are the largest)."""


def fit_windows(windows: Sequence[np.ndarray], start: np.ndarray | None = None,
                iterations: int = 10) -> tuple[float, float, np.ndarray]:
    """Scale, its standard error and all the parameters from windows of rows (t s, gamma
    rad, a1, a2 m/s^2), see the module's model: ``s, b1, b2, e11, e22, e12`` shared, then
    ``c0`` of each window, then ``c1`` of each (t and gamma taken from each window's
    mean). ``start``: the parameters to start from (a previous fit's, shifted to these
    windows; None: from the plain angle). Normal equations (the Jacobian is ~10^3 rows by
    6 + 2 x windows columns), solved again until the scale moves by less than 1e-7.

    Returns (nan, inf, start) when the fit does not converge.
    """
    k = len(windows)
    ts, gs, a1s, a2s, ws = [], [], [], [], []
    for j, rows in enumerate(windows):
        ts.append(rows[:, 0] - rows[:, 0].mean())
        gs.append(rows[:, 1] - rows[:, 1].mean())
        a1s.append(rows[:, 2])
        a2s.append(rows[:, 3])
        ws.append(np.full(len(rows), j))
    t, g0, a1, a2, win = (np.concatenate(v) for v in (ts, gs, a1s, a2s, ws))
    onehot = np.zeros((len(t), k))
    onehot[np.arange(len(t)), win] = 1.0
    if start is None:
        start = np.zeros(6 + 2 * k)  # s b1 b2 e11 e22 e12, then c0 and c1 of each window
        start[0] = 1.0
        start[6:6 + k] = [np.angle(np.mean(np.exp(1j * (np.arctan2(x1, x2) - g))))
                          for x1, x2, g in zip(a1s, a2s, gs, strict=True)]
    x = np.array(start, dtype=float)
    zero, one = np.zeros_like(t), np.ones_like(t)
    failed = math.nan, math.inf, np.array(start, dtype=float)
    for _ in range(iterations):
        theta = x[6:6 + k][win] + x[6 + k:][win] * t + x[0] * g0
        gs_, gc = G * np.sin(theta), G * np.cos(theta)
        e11, e22, e12 = x[3], x[4], x[5]
        r = np.concatenate([a1 - ((1 + e11) * gs_ + e12 * gc + x[1]),
                            a2 - (e12 * gs_ + (1 + e22) * gc + x[2])])
        d1 = (1 + e11) * gc - e12 * gs_  # d a1 / d theta
        d2 = e12 * gc - (1 + e22) * gs_
        jac = np.vstack([
            np.column_stack([d1 * g0, one, zero, gs_, zero, gc, d1[:, None] * onehot,
                             (d1 * t)[:, None] * onehot]),
            np.column_stack([d2 * g0, zero, one, zero, gc, gs_, d2[:, None] * onehot,
                             (d2 * t)[:, None] * onehot])])
        normal = jac.T @ jac
        try:
            step = np.linalg.solve(normal, jac.T @ r)
        except np.linalg.LinAlgError:
            return failed
        if not np.all(np.isfinite(step)):
            return failed
        x += step
        if abs(step[0]) < 1e-7:
            break
    else:
        return failed
    try:
        variance = float(np.linalg.inv(normal)[0, 0]) * float(np.mean(r * r))
    except np.linalg.LinAlgError:
        return failed
    return float(x[0]), math.sqrt(max(variance, 0.0)), x


class GyroScale:
    """The gyro's scale, learned as the roller rolls and kept across boots.

    scale, weight: where to start from (a stored calibration: its scale and weight,
    1/variance; 0 for a new roller, which starts at 1). ``scale`` is the true turn per
    counted turn, applied by the odometry to every rate. This boot's estimate is the
    joint fit over its last ``KEEP`` windows (warm-started from the last fit); it is
    combined with the stored one by their weights.
    """

    def __init__(self, scale: float = 1.0, weight: float = 0.0) -> None:
        self.prior = (self._clamped(scale), max(weight, 0.0))
        self.boot = (1.0, 0.0)  # this boot's fit: scale and weight
        self.scale = self.prior[0] if self.prior[1] > 0.0 else 1.0
        self.windows: list[np.ndarray] = []
        self._fitted: np.ndarray | None = None  # the last fit's parameters (a warm start)
        self._rows: list[tuple[float, float, float, float]] = []
        self._count = 0
        self._start = math.nan

    @property
    def weight(self) -> float:
        """Weight (1/variance) of ``scale``: the stored one's and this boot's."""
        return self.prior[1] + self.boot[1]

    @property
    def open_rows(self) -> list[tuple[float, float, float, float]]:
        """The window being filled: its rows (sensor time s, gyro turn rad, a1, a2 m/s^2)."""
        return list(self._rows)

    @staticmethod
    def _clamped(scale: float) -> float:
        return min(max(scale, 1.0 - LIMIT), 1.0 + LIMIT)

    def add(self, time_s: float, gamma: float, a1: float, a2: float, rate: float) -> None:
        """One clean batch: sensor time (s), the gyro's own turn (rad, offset removed,
        nominal scale), the motion-corrected in-plane specific force (m/s^2), the
        batch's rate (rad/s)."""
        if abs(rate) > QUASI_STATIC_RAD_S:
            return
        self._count += 1
        if self._count % EVERY:
            return
        if not self._rows:
            self._start = time_s
        self._rows.append((time_s, gamma, a1, a2))
        if time_s - self._start >= WINDOW_S:
            self._close()

    def cut(self) -> None:
        """A gap or a clip: the gyro's turn is broken, the window ends here."""
        if self._rows and self._rows[-1][0] - self._start >= 0.5 * WINDOW_S:
            self._close()
        self._rows = []

    def _close(self) -> None:
        rows = np.array(self._rows)
        self._rows = []
        dropped = len(self.windows) == KEEP
        self.windows = [*self.windows[-(KEEP - 1):], rows]
        if max(np.ptp(w[:, 1]) for w in self.windows) < MIN_ARC_RAD:
            self._fitted = None
            return
        start = None
        if self._fitted is not None:  # the last fit's, the new window's angle from gravity
            k = len(self.windows)
            old = self._fitted
            c0, c1 = old[6:6 + (len(old) - 6) // 2], old[6 + (len(old) - 6) // 2:]
            if dropped:
                c0, c1 = c0[1:], c1[1:]
            g = rows[:, 1] - rows[:, 1].mean()
            phase = np.angle(np.mean(np.exp(1j * (np.arctan2(rows[:, 2], rows[:, 3])
                                                  - old[0] * g))))
            start = np.concatenate([old[:6], c0, [phase], c1, [0.0]])
            if len(start) != 6 + 2 * k:
                start = None
        scale, sd, fitted = fit_windows(self.windows, start)
        self._fitted = fitted if math.isfinite(scale) else None
        if not math.isfinite(scale) or sd > MAX_SD or abs(scale - 1.0) > 2 * LIMIT:
            return
        self.boot = (scale, 1.0 / (sd * sd + FLOOR * FLOOR))
        (s0, w0), (s1, w1) = self.prior, self.boot
        self.scale = self._clamped((w0 * s0 + w1 * s1) / (w0 + w1))


__all__ = ["GyroScale", "fit_windows"]
