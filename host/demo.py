"""``smartroller demo``: the simulated roller rolling the demo routine, frames live.

The simulated person sits, presses the roller's button, lies back with the roller
under the shoulder blades, raises the hips, rolls short strokes, drifts once below the
rib cage (the roller buzzes by itself) and gets off. Each printed line is one frame as
the firmware emitted it: position along the back, load per zone and flags.
"""

from __future__ import annotations

import math
from pathlib import Path

from firmware.protocol import Frame, FrameFlag

DEMO_SCENARIO = Path(__file__).resolve().parents[1] / "firmware/sim/scenarios/demo.toml"
_BARS = " ▁▂▃▄▅▆▇█"


def _bar(position_m: float, span_m: float = 0.2, width: int = 21) -> str:
    """A strip with a marker at the position (-span .. +span around the zero)."""
    cell = round((position_m + span_m) / (2 * span_m) * (width - 1))
    cells = ["·"] * width
    cells[width // 2] = "|"
    if 0 <= cell < width:
        cells[cell] = "●"
    return "".join(cells)


def _zones(loads: tuple[float, ...], full_n: float = 60.0) -> str:
    return "".join(_BARS[min(len(_BARS) - 1, max(0, round(z / full_n * 8)))] for z in loads)


def live_line(frame: Frame) -> str:
    """One line of the live view (mm, N)."""
    flags = []
    if frame.flags & FrameFlag.BEYOND_FENCE:
        flags.append("BUZZ: below the rib cage")
    if frame.flags & FrameFlag.ZEROED:
        flags.append("zeroed")
    if not frame.flags & FrameFlag.IN_CONTACT:
        flags.append("off the roller")
    return (f"{frame.t:6.1f} s  {frame.position * 1e3:+6.0f} mm  {_bar(frame.position)}  "
            f"{frame.total_load:5.0f} N  {_zones(frame.zone_loads)}  {' '.join(flags)}")


def run_demo(duration_s: float | None = None, speed: float = 4.0, seed: int = 7,
             scenario: Path | None = None) -> None:
    """Run the demo and print the live view (``speed``: simulated s per real s)."""
    from firmware.sim.rig import SimRoller
    from firmware.sim.scenario import load_scenario

    roller = SimRoller(load_scenario(scenario or DEMO_SCENARIO), seed, speed=speed)
    end = roller.duration_s if duration_s is None else min(duration_s, roller.duration_s)
    person = roller.world.person
    print(f"Simulated roller, seed {seed}: a {person.stature_m * 100:.0f} cm "
          f"{person.sex} of {person.weight_kg:.0f} kg rolls for {end:.0f} s "
          f"({f'x{speed:g} speed' if speed else 'as fast as it computes'}). Position is "
          "along the back from where it first "
          "touched, + toward the feet.")
    state = {"last": -math.inf, "beyond": False, "warnings": 0}

    def show(frame: Frame) -> None:
        beyond = bool(frame.flags & FrameFlag.BEYOND_FENCE)
        if beyond and not state["beyond"]:
            state["warnings"] += 1
        changed = beyond != state["beyond"] or frame.flags & FrameFlag.ZEROED
        state["beyond"] = beyond
        if frame.t - state["last"] >= 0.5 or changed:
            state["last"] = frame.t
            print(live_line(frame), flush=True)

    roller.add_sink(show)
    try:
        roller.run(until=end)
    finally:
        roller.close()
    fw = roller.firmware
    print(f"\n{fw.frames} frames ({fw.frames / end:.0f}/s), {fw.scanner.scans} zone scans, "
          f"{fw.imu.overflows} FIFO overflows; the roller warned {state['warnings']} time(s) "
          "below the rib cage by itself.")
