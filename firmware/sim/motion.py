"""Motion primitives of the simulated person: minimum-jerk movements between knots.

``min_jerk`` is the minimum-jerk profile (zero speed and acceleration at both ends): the
fraction of a movement's distance covered at normalised time tau in [0, 1];
``min_jerk_rate`` its derivative, ``min_jerk_inverse`` the tau at which a fraction is
covered. ``Knots`` is a smooth signal of time (s) built from (t, value) knots joined by
such movements, with its rate (value per s). Pure trajectory maths: what the person
does with them is planned in ``firmware.sim.routine``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def min_jerk(tau: np.ndarray | float) -> np.ndarray:
    """Minimum-jerk profile 10 tau^3 - 15 tau^4 + 6 tau^5 over tau in [0, 1] (clipped)."""
    tau = np.clip(tau, 0.0, 1.0)
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)


def min_jerk_rate(tau: np.ndarray | float) -> np.ndarray:
    """d(min_jerk)/d(tau): 30 tau^2 (1 - tau)^2 (zero outside [0, 1])."""
    tau = np.asarray(tau, dtype=float)
    inside = (tau >= 0.0) & (tau <= 1.0)
    return np.where(inside, 30.0 * tau**2 * (1.0 - tau) ** 2, 0.0)


_TAU = np.linspace(0.0, 1.0, 4001)
_MJ = min_jerk(_TAU)


def min_jerk_inverse(q: float) -> float:
    """The tau at which the minimum-jerk profile has covered fraction q of the distance."""
    return float(np.interp(q, _MJ, _TAU))


@dataclass(frozen=True, eq=False)
class Knots:
    """A smooth signal: minimum-jerk transitions between (t s, value) knots.

    Constant before the first and after the last knot; t strictly increasing.
    """

    t: np.ndarray
    v: np.ndarray

    def _where(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = np.clip(np.searchsorted(self.t, t, side="right") - 1, 0, len(self.t) - 2)
        t0, t1 = self.t[k], self.t[k + 1]
        return k, (t - t0) / (t1 - t0), t1 - t0

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Value at times t (s)."""
        t = np.asarray(t, dtype=float)
        if len(self.t) == 1:
            return np.full(t.shape, self.v[0])
        k, tau, _ = self._where(t)
        return self.v[k] + (self.v[k + 1] - self.v[k]) * min_jerk(tau)

    def rate(self, t: np.ndarray) -> np.ndarray:
        """Time derivative at times t (value per s)."""
        t = np.asarray(t, dtype=float)
        if len(self.t) == 1:
            return np.zeros(t.shape)
        k, tau, span = self._where(t)
        return (self.v[k + 1] - self.v[k]) * min_jerk_rate(tau) / span
