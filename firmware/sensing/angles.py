"""Angle arithmetic shared by the sensing modules."""

from __future__ import annotations

import math


def wrap(angle: float) -> float:
    """Wrap an angle to [-pi, pi), rad."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


__all__ = ["wrap"]
