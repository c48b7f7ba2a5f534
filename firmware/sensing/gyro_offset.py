"""Gyro zero-rate offset of the roller axis: calibrated at rest, tracked when still, and
fitted to gravity's turn while the roller never stops.

In the spirit of x-io's FusionOffset: while the roller is still for longer than a
timeout, the offset follows the raw rate through a slow low-pass filter. What counts as
still cannot be faked by a steady roll: the samples' spread stays within a threshold
**and** gravity's direction in the sensor frame (``tilt``: the in-plane accelerometer
angle, rad) stays within ``still_tilt_rad`` of where the spell began. A steady roll
turns gravity's direction however small the offset-corrected rate looks, and a wrong
offset does not make a still roller look moving (the old test of the angle turned by
the gyro, offset removed, did both: a roller powered on while turning at 12 deg/s
learned 19 deg/s and never counted as still again). Breathing on the roller rocks it
back and forth by a fraction of a degree: that is still.

For ``fit_s`` after boot the offset is *learning*: it is also fitted to gravity's turn
(``TurnFit``): the gyro's turn since boot minus gravity's, against time, is a straight
line whose slope is the offset, plus the accelerometer's zero-g offsets, which bend
gravity's angle by a first harmonic of the angle (up to ~5 deg). Fitted over
everything since boot, and not over short windows, the harmonic cannot pass for a
slope: 2-s windows between angles where it differed by 2 deg disagreed by 1 deg/s.
Stillness needs no special case (the line is flat in it); a gap or a clip cuts the
line (``TurnFit.cut``). A roller lying still at boot (gravity turned less than
``ROLLED_RAD``) is calibrated by a plain average over its first still second and
tracked at rest as always. A roller that rolled first (powered on, or restarted, while
someone rolls) takes the fit's estimate from ``min_fit_s``. Either counts as
calibrated (no ``UNCALIBRATED`` frames) once the fit has run ``trust_s`` with the
slope's standard error within ``trust_rad_s``, and from then on the fit's estimate
replaces the rest calibration too (a "still" second at the slow end of a long stroke
takes a slow roll for offset). Each such revision (``revised``) is a change of the
offset since boot: the odometry corrects the position since the zero with it
(``Odometry``). The MPU-6050's zero-rate offset is up to +-20 deg/s and drifts with
temperature (spec rev 3.4): over ``fit_s`` it is taken as constant; afterwards it is
tracked at rest.

Pure Python (the fit's 4x4 solve too: numpy's overhead is larger at this size):
batches are a handful of samples and this runs on a Pi Zero 2 W.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from firmware.sensing.angles import wrap

_DEG = math.pi / 180.0
ROLLED_RAD = 0.1
"""Gravity turned more than this since boot: the roller rolls, its offset is fitted, rad."""
GYRO_STARTUP_S = 0.1
"""The MPU-6050's gyro senses no rotation for its start-up time after waking (30 ms
typical, product spec rev 3.4, 6.1; 30-50 ms drawn in the simulator): its turn is not
fitted, nor taken as the zero's, before this much of the boot's samples, s."""


class TurnFit:
    """Least-squares line of the gyro's turn minus gravity's turn against time, rad.

    Model, per batch: ``sign * raw_turn - tilt = slope * t + c + p cos(tilt) +
    q sin(tilt)``, ``slope = sign * offset`` (rad/s), the harmonic for the zero-g
    offsets (``p, q`` up to ~0.08 rad: 80 mg), held near 0 by a prior until the roller
    has turned through enough angles to tell them from the slope. The normal equations
    are 15 running sums; ``solve`` gives the slope and its standard error. Where the
    gyro missed turn (a gap, a clip) the two turns part by an unknown amount: ``cut``
    starts a new segment with a constant ``c`` of its own (the closed segment's sums are
    kept with their constant eliminated), so nothing before the cut is lost.

    prior_rad: 1-sigma of the harmonic's terms; noise_rad: the prior's scale, the
    spread of one batch's gravity angle (body motion included).
    """

    def __init__(self, prior_rad: float = 0.08, noise_rad: float = 0.03) -> None:
        self.weak = (noise_rad / prior_rad) ** 2
        # sums of x x^T (upper triangle, row by row), of x y, of y y; x = (t, 1, c, s)
        self.sums = [0.0] * 15
        # closed segments, their constants eliminated: sums of x x^T over (t, c, s), of
        # x y, of y y; and how many there are
        self.closed = [0.0] * 10
        self.segments = 0
        self.count = 0  # observations in every segment
        self.t0: float | None = None  # time of the first observation, s
        self.span = 0.0  # time since the first observation, s

    @property
    def n(self) -> int:
        """Observations in the open segment."""
        return round(self.sums[4])

    def cut(self) -> None:
        """Close the open segment (if it has observations): what follows has its own
        constant."""
        h00, h01, h02, h03, n, h12, h13, h22, h23, h33, b0, b1, b2, b3, yy = self.sums
        if n <= 0.0:
            return
        k = (h01, h12, h13)
        reduced = [h00 - k[0] * k[0] / n, h02 - k[0] * k[1] / n, h03 - k[0] * k[2] / n,
                   h22 - k[1] * k[1] / n, h23 - k[1] * k[2] / n, h33 - k[2] * k[2] / n,
                   b0 - k[0] * b1 / n, b2 - k[1] * b1 / n, b3 - k[2] * b1 / n,
                   yy - b1 * b1 / n]
        self.closed = [a + b for a, b in zip(self.closed, reduced, strict=True)]
        self.segments += 1
        self.sums = [0.0] * 15

    def add(self, t: float, y: float, tilt: float) -> None:
        """One batch: time ``t`` (s), turn difference ``y`` (rad), gravity's ``tilt``."""
        if self.t0 is None:
            self.t0 = t
        self.span = u = t - self.t0
        self.count += 1
        c, s = math.cos(tilt), math.sin(tilt)
        h00, h01, h02, h03, h11, h12, h13, h22, h23, h33, b0, b1, b2, b3, yy = self.sums
        self.sums = [h00 + u * u, h01 + u, h02 + u * c, h03 + u * s, h11 + 1.0, h12 + c,
                     h13 + s, h22 + c * c, h23 + c * s, h33 + s * s, b0 + u * y, b1 + y,
                     b2 + c * y, b3 + s * y, yy + y * y]

    def solve(self) -> tuple[float, float] | None:
        """(slope rad/s, its standard error rad/s), or None while it cannot be told."""
        h00, h01, h02, h03, h11, h12, h13, h22, h23, h33, b0, b1, b2, b3, yy = self.sums
        r00, r02, r03, r22, r23, r33, rb0, rb2, rb3, ryy = self.closed
        if h11 < 2:
            return None
        weak = self.weak
        h00, h02, h03 = h00 + r00, h02 + r02, h03 + r03
        h22, h23, h33 = h22 + r22 + weak, h23 + r23, h33 + r33 + weak
        h = [[h00, h01, h02, h03], [h01, h11, h12, h13], [h02, h12, h22, h23],
             [h03, h13, h23, h33]]
        b = [b0 + rb0, b1, b2 + rb2, b3 + rb3]
        dof = self.count - 4 - self.segments
        if dof < 4:
            return None
        solved = _solve_spd(h, [b, [1.0, 0.0, 0.0, 0.0]])
        if solved is None:
            return None
        beta, first = solved  # the parameters; the first column of the inverse
        residual = max(yy + ryy - sum(p * q for p, q in zip(beta, b, strict=True)), 0.0) / dof
        return beta[0], math.sqrt(residual * max(first[0], 0.0))


def _solve_spd(h: list[list[float]], rhs: list[list[float]]) -> list[list[float]] | None:
    """Solve ``h x = r`` for each ``r`` in ``rhs`` (h symmetric positive definite, by
    Cholesky); None if it is not (numerically)."""
    # (the sums as plain loops, not generators: a generator's set-up and resumptions cost
    # more than its few products; from 0.0, the same sums as ``sum``'s int 0 gives)
    size = len(h)
    low = [[0.0] * size for _ in range(size)]
    for i in range(size):
        row, hi = low[i], h[i]
        for j in range(i + 1):
            other = low[j]
            acc = 0.0
            for k in range(j):
                acc += row[k] * other[k]
            acc = hi[j] - acc
            if i == j:
                if acc <= 1e-12 * abs(hi[i]) or acc <= 0.0:
                    return None
                row[i] = math.sqrt(acc)
            else:
                row[j] = acc / other[j]
    out = []
    for r in rhs:
        z = [0.0] * size
        for i in range(size):
            row = low[i]
            acc = 0.0
            for k in range(i):
                acc += row[k] * z[k]
            z[i] = (r[i] - acc) / row[i]
        x = [0.0] * size
        for i in reversed(range(size)):
            acc = 0.0
            for k in range(i + 1, size):
                acc += low[k][i] * x[k]
            x[i] = (z[i] - acc) / low[i][i]
        out.append(x)
    return out


class GyroOffset:
    """Tracks the zero-rate offset of one gyro axis, rad/s (in the gyro's own sign).

    threshold_rad_s: still while the samples' spread is within this rate.
    still_tilt_rad: ...and gravity's direction within this of the spell's start.
    net_angle_rad: without a tilt: ...and the angle turned (offset removed) within this.
    timeout_s: how long it must stay still before the offset is updated.
    time_constant_s: low-pass time constant of the tracking once calibrated.
    calibration_s: length of the first average that calibrates the offset.
    min_fit_s, trust_s, trust_rad_s, fit_s: the fit to gravity's turn (module doc), s and
        rad/s.
    """

    SOLVE_EVERY = 5  # batches between two solves of the fit (0.1 s)

    def __init__(self, *, threshold_rad_s: float = 2.0 * _DEG, still_tilt_rad: float = 1.0 * _DEG,
                 net_angle_rad: float = 1.0 * _DEG, timeout_s: float = 2.0,
                 time_constant_s: float = 20.0, calibration_s: float = 1.0,
                 min_fit_s: float = 1.0, trust_s: float = 4.0,
                 trust_rad_s: float = 0.05 * _DEG, fit_s: float = 60.0) -> None:
        self.offset = 0.0
        self.calibrated = False
        self.learning = True  # the offset since boot is still being learned
        self.from_gravity = False  # the offset comes from gravity's turn, not rest
        self.still = False
        self.revised = False  # the last update revised the offset since boot (module doc)
        self.error = math.nan  # the fit's standard error of the offset, rad/s
        self.threshold = threshold_rad_s
        self.still_tilt = still_tilt_rad
        self.net_limit = net_angle_rad
        self.timeout = timeout_s
        self.time_constant = time_constant_s
        self.calibration_s = calibration_s
        self.min_fit_s = min_fit_s
        self.trust_s = trust_s
        self.trust = trust_rad_s
        self.fit_s = fit_s
        self.fit = TurnFit()
        self._still_for = 0.0
        self._net = 0.0
        self._sum = 0.0
        self._n = 0
        self._tilt0: float | None = None  # gravity's direction when the spell began, rad
        self._raw = 0.0  # raw turn since boot (no offset removed), rad, gyro sign
        self._t = 0.0  # time since boot, s
        self._last: tuple[float, float, float] | None = None  # raw turn, tilt, time
        self._quiet_until = GYRO_STARTUP_S  # no fitting before this time, s
        self._turn = 0.0  # gravity's turn since the fit's first batch, unwrapped, rad
        self._range = (0.0, 0.0)  # least and most of it, rad
        self._batches = 0

    @property
    def rolled(self) -> bool:
        """True once gravity turned more than ``ROLLED_RAD`` while learning."""
        return self._range[1] - self._range[0] > ROLLED_RAD

    def _restart(self) -> None:
        self.still = False
        self._still_for = self._net = self._sum = 0.0
        self._n = 0
        self._tilt0 = None

    def update(self, rates: Sequence[float], dt: float, tilt: float | None = None,
               sign: float = 1.0, broken: bool = False) -> float:
        """Feed raw rates (rad/s) sampled every ``dt`` s and, if gravity was clean,
        ``tilt``: the batch's in-plane gravity angle (rad, the roller's sign, zero-g
        offsets and all: only its changes count); ``sign``: the roller axis's sign in the
        gyro's axis; ``broken``: the gyro missed turn in or just before this batch (a
        gap, a clip), so its turn and gravity's part ways here. Return the offset, rad/s."""
        self.revised = False
        n = len(rates)
        if n == 0:
            return self.offset
        total = sum(rates)
        self._raw += total * dt
        self._t += n * dt
        if broken:  # (after a gap the gyro may be starting again)
            self._last = None
            self._quiet_until = self._t + GYRO_STARTUP_S
        if self.learning and tilt is not None and self._t > self._quiet_until:
            self._fit_add(tilt, sign)
        lo, hi = min(rates), max(rates)
        moved = hi - lo > self.threshold
        if tilt is not None and not moved:
            if self._tilt0 is None:
                self._tilt0 = tilt
            moved = abs(wrap(tilt - self._tilt0)) > self.still_tilt
        if self.learning:
            if not self.calibrated and not self.rolled:
                if moved:
                    self._restart()
                else:
                    self._sum += total
                    self._n += n
                    if self._n * dt >= self.calibration_s:
                        self.offset = self._sum / self._n
                        self.calibrated, self.from_gravity, self.revised = True, False, True
                        self._restart()
            self._fit_solve(sign)
            if self.from_gravity or not self.calibrated:
                return self.offset
            # (calibrated at rest: tracked at rest as well, while the fit runs)
        off = self.offset
        if tilt is None:  # no gravity to judge by: the angle turned, offset removed
            self._net += (total - n * off) * dt
            moved = moved or hi - off > self.threshold or off - lo > self.threshold \
                or abs(self._net) > self.net_limit
        if moved:
            self._restart()
            return self.offset
        self._still_for += n * dt
        if self._still_for >= self.timeout:
            self.still = True
            gain = min(1.0, n * dt / self.time_constant)
            self.offset += gain * (total / n - off)
        return self.offset

    def _fit_add(self, tilt: float, sign: float) -> None:
        """Unwrap gravity's turn (by the gyro's, offset as now) and add it to the fit."""
        last = self._last
        if last is None:  # the first batch, or the first after a break
            turn = self._turn
            self.fit.cut()
        else:
            predicted = sign * (self._raw - last[0] - self.offset * (self._t - last[2]))
            turn = self._turn + predicted + wrap(tilt - last[1] - predicted)
        self._last = (self._raw, tilt, self._t)
        self._turn = turn
        low, high = self._range
        if turn < low or turn > high:  # (min and max, without their calls)
            self._range = (turn if turn < low else low, turn if turn > high else high)
        self.fit.add(self._t, sign * self._raw - turn, tilt)

    def _fit_solve(self, sign: float) -> None:
        """Take the fit's offset: at once while there is no other, once trusted over a
        rest calibration; end the learning after ``fit_s``."""
        if self.calibrated and self._t >= self.fit_s:
            self.learning = False  # from now on tracked at rest
            self._restart()
            return
        self._batches += 1
        fit = self.fit
        every = self.SOLVE_EVERY if not self.calibrated else 5 * self.SOLVE_EVERY
        if self._batches % every or not self.rolled or fit.span < self.min_fit_s:
            return  # (the cheapest test first: it returns 4 batches of 5)
        solved = fit.solve()
        if solved is None:
            return
        slope, self.error = solved
        trusted = fit.span >= self.trust_s and self.error <= self.trust
        if trusted or self.from_gravity or not self.calibrated:
            self.offset, self.from_gravity, self.revised = sign * slope, True, True
            self.calibrated = self.calibrated or trusted
