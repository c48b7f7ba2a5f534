"""The package's build hook (pyproject.toml holds everything else).

By default the build is pure Python, as it always was. With ``SMARTROLLER_COMPILE=1`` in
the environment, the firmware's per-cycle modules (``COMPILED``: the drivers, the sensing
pipeline, the loop and the fence) are compiled with mypyc as well, for the roller (docs
"Firmware CPU, compiled", hardware/BUILD.md). mypy (with mypyc), setuptools and a C
compiler must then be installed where the build runs, and pip run with
``--no-build-isolation`` (``make firmware-compiled``, ``hardware/install-pi.sh --compiled``).
Each compiled module sits next to its ``.py`` in the installed package, and Python imports
the compiled one; the ``.py`` files stay the reference the tests run, and a pure build
(no ``SMARTROLLER_COMPILE``) is the fallback. tests/test_compiled.py checks that a compiled
build gives the same frames as the pure modules on a recorded tape.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import setup

COMPILED = [
    "firmware/app.py",
    "firmware/safety.py",
    "firmware/samples.py",
    "firmware/drivers/ads1115.py",
    "firmware/drivers/bus_watch.py",
    "firmware/drivers/i2c.py",
    "firmware/drivers/max17048.py",
    "firmware/drivers/mpu6050.py",
    "firmware/drivers/panel.py",
    "firmware/drivers/sample_clock.py",
    "firmware/drivers/zone_scanner.py",
    "firmware/sensing/__init__.py",
    "firmware/sensing/angles.py",
    "firmware/sensing/gyro_check.py",
    "firmware/sensing/gyro_offset.py",
    "firmware/sensing/gyro_scale.py",
    "firmware/sensing/load.py",
    "firmware/sensing/odometry.py",
    "firmware/sensing/pipeline.py",
]
"""The modules compiled with ``SMARTROLLER_COMPILE=1`` (paths from the repository's root).
Not among them: firmware/protocol.py (the frames, the wire format the host shares), and
firmware/drivers/haptic.py, whose ``Haptic.play`` and ``stop`` the bench's closed loop
replaces on the instance to log the buzzes (a compiled class's methods are read-only)."""


def compile_requested() -> bool:
    """True if ``SMARTROLLER_COMPILE`` asks for the compiled build (set, not "" or "0")."""
    return os.environ.get("SMARTROLLER_COMPILE", "") not in ("", "0")


def ext_modules() -> list[Any]:
    """The mypyc extensions of ``COMPILED`` when asked for, else none."""
    if not compile_requested():
        return []
    from mypyc.build import mypycify  # only here: a pure build does not need mypy

    # (one C file per module: a Pi Zero 2 W's 512 MB do not compile one file of them all)
    extensions = mypycify(COMPILED, opt_level="3", separate=True)
    for extension in extensions:
        # Each float operation rounded on its own, as the interpreter does: gcc would fuse
        # a * b + c into one FMA where the CPU has one (the Pi's 64-bit ARM, not x86-64's
        # baseline), and the frames would differ from the pure modules' in the last bits.
        extension.extra_compile_args = [*extension.extra_compile_args, "-ffp-contract=off"]
    return extensions


if __name__ == "__main__":
    setup(ext_modules=ext_modules())
