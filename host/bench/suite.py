"""``smartroller bench``: the simulated roller end to end, scored against the ground truth.

Each simulated person rolls twice. The first session is calibrated (the person rolls up
to the top of the shoulders and down to the bottom of the ribs, holding and pressing
the button at each); it starts as a new user whose profile holds only stature and sex.
The second session, another day's routine of the same person on the same roller, is not
calibrated; it uses the profile learned from the first. The unchanged firmware runs on
emulated hardware; the host's analysis runs in the loop over a modeled Bluetooth link
(``host.bench.closed_loop``), and its fence and buzz commands reach the roller. The frames (all
an estimator ever sees) and what the analysis made of them are then compared with the
world's truth, which only the bench reads (``host.bench.scoring`` has the definitions).
The second session's frames are also analysed offline as a brand-new user's (no
profile at all) for the ``new_user`` figures.

Figures (docs/benchmarks.md has the targets and the last measured values):

- position_rmse_mm, rolling_rmse_mm, position_error_p95_mm_median: the roller's own
  odometry against the true contact (slip included) and against the distance rolled;
  rolling_rmse_outside_faults_mm: the same outside the scenario's timed faults' windows
  (``fault_windows``), each stretch between two windows from its own start (equal to
  rolling_rmse_mm on a scenario with no timed faults); rolling_rmse_bound_mm: the same
  raw samples replayed with the true body loads (a perfect load estimator, the
  profile's foam stiffness), rolling_rmse_oracle_mm: with the roller's true radius and
  stiffness as well (``host.bench.rolling_bound``);
- vertebra_error_mm_median and vertebra_error_mm_p95 (its 95th percentile; calibrated
  sessions, after the calibration; also for the profile and new-user cases),
  region_accuracy_calibrated (calibrated sessions after the calibration),
  region_accuracy_uncalibrated (second sessions, profile from the
  first), region_accuracy_new_user; region_accuracy_oracle (_uncalibrated): the same
  frames' true contact through a perfectly calibrated body model (what the body model
  alone allows); region_accuracy_bound (_uncalibrated): the same frames' true contact
  through the body model the analysis built from the calibration it got, with the
  landmarks where the person really held them (the profile sessions: the first
  session's calibration): a tracker with no position error but the same calibration
  (sessions with no calibration, their own or their profile's, are left out);
  lumbar_accuracy_* (lumbar versus not lumbar, the same frames);
- uncertainty_coverage (pooled over both sessions' scored frames; _min: the lowest
  session; _new_user: the brand-new user's): the share of frames whose vertebra error
  is within 2 reported SD;
- stroke_precision, stroke_recall, stroke_f1, stroke_amplitude_mae_mm,
  stroke_count_exact_fraction (strokes >= 30 mm), stroke_decision_ms_p99;
- warning_recall (excursions >= 10 mm below T12/L1 for >= 0.3 s), warning_delay_ms_median,
  warning_latency_ms_p99_device, warning_latency_ms_p99_host, false_alarms_per_hour;
- firmware_cpu_ms_per_s (by replay on an open-loop run of each person's first
  scenario: ``firmware_cpu``; firmware_cpu_by_replay false when any replay diverged and
  the in-situ meter stood in), host_cpu_ms_per_s (live analysis),
  offline_analysis_s_per_hour (best of ``OFFLINE_RUNS``; mean and max over sessions),
  fifo_overflows, zone_scan_hz_min.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware.protocol import Frame, FrameFlag
from firmware.sim.scenario import Scenario, default_scenario
from host.bench.rolling_bound import RawRecorder, rolling_bounds
from host.bench.workers import ordered_map

log = logging.getLogger(__name__)

SUITE_PEOPLE = 30
"""People in the default suite."""
SUITE_STATURE_M = (1.52, 1.98)
"""The default suite's statures are spread evenly over this range, m."""
OFFLINE_RUNS = 3
"""The offline pass is timed this many times and the best is kept (the convention of
``timeit``: the spread above the best is other processes on the machine)."""


class FrameLog:
    """Collects frames into arrays (cheap enough to run inside the firmware's sink)."""

    def __init__(self) -> None:
        self.t: list[float] = []
        self.position: list[float] = []
        self.flags: list[int] = []
        self.load: list[float] = []

    def __call__(self, frame: Frame) -> None:
        """Sink: record one frame."""
        self.t.append(frame.t)
        self.position.append(frame.position)
        self.flags.append(int(frame.flags))
        self.load.append(frame.total_load)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t s, position m, flags) as numpy arrays."""
        return np.array(self.t), np.array(self.position), np.array(self.flags, dtype=np.int64)


def _relative_errors(t_world: np.ndarray, position: np.ndarray, flags: np.ndarray,
                     truth_t: np.ndarray, truth_contact: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Errors (m) of the relative position against the truth at every frame, and the
    mask of the frames that are scored (in contact, truth known, after the first ZEROED
    flag). Both are taken relative to the frame that carried the first ZEROED flag."""
    none = np.zeros(len(position), dtype=bool)
    zeroed = np.flatnonzero(flags & int(FrameFlag.ZEROED))
    if len(zeroed) == 0:
        return np.full(len(position), np.nan), none
    first = zeroed[0]
    truth = np.interp(t_world, truth_t, np.nan_to_num(truth_contact, nan=np.nan))
    in_truth = np.interp(t_world, truth_t, np.isfinite(truth_contact).astype(float)) > 0.999
    contact = (flags & int(FrameFlag.IN_CONTACT)) != 0
    use = contact & in_truth & np.isfinite(truth)
    use[:first] = False
    if not np.isfinite(truth[first]):
        return np.full(len(position), np.nan), none
    return (position - position[first]) - (truth - truth[first]), use


def position_errors(t_world: np.ndarray, position: np.ndarray, flags: np.ndarray,
                    truth_t: np.ndarray, truth_contact: np.ndarray) -> np.ndarray:
    """Errors (m) of the relative position against the truth, over frames in contact.

    Both are taken relative to the frame that carried the first ZEROED flag.
    """
    err, use = _relative_errors(t_world, position, flags, truth_t, truth_contact)
    return err[use]


def position_errors_after(t_world: np.ndarray, position: np.ndarray, flags: np.ndarray,
                          truth_t: np.ndarray, truth_contact: np.ndarray,
                          after_s: float) -> np.ndarray:
    """Errors (m) as ``position_errors`` (taken from the first ZEROED frame), over the
    scored frames after world time ``after_s`` (s) only."""
    err, use = _relative_errors(t_world, position, flags, truth_t, truth_contact)
    return err[use & (t_world > after_s)]


def errors_outside_windows(t_world: np.ndarray, position: np.ndarray, flags: np.ndarray,
                           truth_t: np.ndarray, truth_contact: np.ndarray,
                           windows: Sequence[tuple[float, float]]) -> np.ndarray:
    """Errors (m) as ``position_errors``, over the frames outside ``windows`` (world
    time, s), each stretch between two windows taken from its own first scored frame:
    what the odometry adds outside the faults, not what a fault lost inside its window
    (a brown-out loses the turn made while the IMU restarts, for good)."""
    err, use = _relative_errors(t_world, position, flags, truth_t, truth_contact)
    inside = np.zeros(len(t_world), dtype=bool)
    cuts = [0]
    for a, b in sorted(windows):
        inside |= (t_world >= a) & (t_world < b)
        cuts.append(int(np.searchsorted(t_world, b)))
    cuts.append(len(t_world))
    out = []
    for i0, i1 in zip(cuts[:-1], cuts[1:], strict=True):
        scored = np.flatnonzero(use[i0:i1] & ~inside[i0:i1]) + i0
        if len(scored):
            out.append(err[scored] - err[scored[0]])
    return np.concatenate(out) if out else np.array([])


FAULT_SETTLE_S = 2.0
"""A timed fault's window ends this long after the fault, s: the part's start-up and
the first full FIFO batch after it, with margin."""


def fault_windows(scenario: Scenario) -> list[tuple[float, float]]:
    """The world-time windows (s) of the scenario's timed faults that touch the
    position: the IMU's brown-outs. (Random NACKs, broken and 0xFF reads have no
    window: they are everywhere, and their cost counts in every figure; the ADC that
    dies touches the load, not the position.)"""
    return [(t, t + FAULT_SETTLE_S) for t in scenario.faults.imu_brownouts_s]


@dataclass
class SessionResult:
    """Figures and raw scores of one simulated session."""

    seed: int
    session: int
    kind: str  # "calibrated" (first session) or "profile" (second)
    stature_m: float
    duration_s: float
    frames: int
    position_rmse_mm: float
    rolling_rmse_mm: float
    rolling_rmse_outside_faults_mm: float
    position_error_p95_mm: float
    firmware_cpu_ms_per_s: float
    host_cpu_ms_per_s: float
    offline_s_per_hour: float
    fifo_overflows: int
    zone_scan_hz: float
    firmware_cpu_by_replay: bool = True
    rolling_rmse_bound_mm: float = math.nan  # the raw samples with the true loads
    rolling_rmse_oracle_mm: float = math.nan  # and the roller's true radius, stiffness
    spine: dict = field(default_factory=dict)
    new_user_spine: dict = field(default_factory=dict)
    strokes: dict = field(default_factory=dict)
    warnings: dict = field(default_factory=dict)
    new_user_warnings: dict = field(default_factory=dict)
    offline_matches_online: bool = True


def suite(people: int = SUITE_PEOPLE) -> list[tuple[Scenario, int]]:
    """The default suite: ``people`` people with statures spread evenly over
    ``SUITE_STATURE_M``, everything else drawn per person (sex, weight, the share on the
    roller, their cadence and stroke lengths within the default ranges, their slips),
    and two drifts below the ribs per session."""
    lo, hi = SUITE_STATURE_M
    out = []
    base = default_scenario()
    for k in range(people):
        stature = round(lo + (hi - lo) * (k + 0.5) / people, 3)
        person = dataclasses.replace(base.person, stature_m=stature)
        routine = dataclasses.replace(base.routine, lumbar_excursions=2)
        out.append((dataclasses.replace(base, person=person, routine=routine), k + 1))
    return out


def rolled_distance(truth: object) -> np.ndarray:
    """The distance the roller rolled by the truth (turn times rolling radius), m,
    per truth sample; NaN while no body is on it."""
    r_eff, angle = truth.r_eff_m, truth.roll_angle_rad  # type: ignore[attr-defined]
    rolled = np.concatenate([[0.0], np.cumsum(r_eff[1:] * np.diff(angle))])
    return np.where(np.isfinite(truth.contact_m), rolled, np.nan)  # type: ignore[attr-defined]


def _rms_mm(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(errors**2))) * 1e3 if len(errors) else math.nan


def _odometry(roller: object, t: np.ndarray, position: np.ndarray, flags: np.ndarray
              ) -> tuple[float, float, float, float]:
    truth = roller.world.truth  # type: ignore[attr-defined]
    t_world = roller.sensor_to_world(t)  # type: ignore[attr-defined]
    errors = position_errors(t_world, position, flags, truth.t, truth.contact_m)
    rolled = rolled_distance(truth)
    rolling = position_errors(t_world, position, flags, truth.t, rolled)
    outside = errors_outside_windows(t_world, position, flags, truth.t, rolled,
                                     fault_windows(roller.scenario))  # type: ignore[attr-defined]
    p95 = float(np.percentile(np.abs(errors), 95)) * 1e3 if len(errors) else math.nan
    return _rms_mm(errors), _rms_mm(rolling), p95, _rms_mm(outside)


def run_session(scenario: Scenario, seed: int, duration_s: float | None = None, *,
                session: int = 0, user: object | None = None, held: object | None = None,
                state_dir: Path | None = None) -> tuple[SessionResult, object, object | None]:
    """Run one closed-loop session and score it; returns the result, the user model
    learned from it (the offline pass's) and the calibration it got as the person held
    it (``scoring.HeldCalibration``; ``held``, the profile's, when it got none).
    ``state_dir``: the roller's state directory (None: a new roller)."""
    from host.analysis.session import analyze
    from host.analysis.stroke_score import StrokeSet
    from host.analysis.stroke_score import score as score_strokes
    from host.analysis.strokes import StrokeSegmenter
    from host.bench import scoring as benchscore
    from host.bench.closed_loop import new_user as blank_user
    from host.bench.closed_loop import run_session as run_closed_loop_session

    log = FrameLog()
    raw = RawRecorder()
    run = run_closed_loop_session(scenario, seed, duration_s, session=session,
                                  user=user, sink=log, raw=raw,  # type: ignore[arg-type]
                                  state_dir=state_dir)
    roller, user, end, loop = run.roller, run.user, run.duration_s, run.loop
    person = roller.world.person
    t, position, flags = log.arrays()
    rmse, rolling, p95, outside = _odometry(roller, t, position, flags)
    bounds = rolling_bounds(roller, raw.items,
                            lambda t, position, flags: _odometry(roller, t, position, flags)[1])
    del raw
    fw = roller.firmware
    cols = loop.frames
    offline_s = math.inf
    for _ in range(OFFLINE_RUNS):  # the best of a few: other processes only ever add time
        t0 = time.process_time()
        offline, off_analyzer = analyze(cols, user, segmenter=StrokeSegmenter())
        offline_s = min(offline_s, time.process_time() - t0)
    same = (len(offline.strokes) == len(loop.update.strokes)
            and np.allclose(np.nan_to_num(offline.estimates.p_below_ribs, nan=-1.0),
                            np.nan_to_num(loop.update.estimates.p_below_ribs, nan=-1.0)))
    calibrated = bool(roller.world.routine.landmarks)
    after = roller.world.routine.landmarks[-1].hold_end_s if calibrated else -math.inf
    analyzer = run.analyzer
    got = analyzer.calibration.result if analyzer.calibrated_at is not None else None
    marks = benchscore.held_landmarks_m(roller, cols, got) if got is not None else None
    if marks is not None:
        held = benchscore.held_calibration(user, *marks)  # type: ignore[arg-type]
    spine = benchscore.score_spine(roller, cols, loop.update.estimates, after,
                                   held=held)  # type: ignore[arg-type]
    new_user, _ = analyze(cols, blank_user(roller))
    new_spine = benchscore.score_spine(roller, cols, new_user.estimates)
    detected = StrokeSet.from_strokes(loop.update.strokes, loop.update.decided_t,
                                      roller.sensor_to_world)
    truth_strokes = StrokeSet.of(roller.world.truth.strokes)
    keep = truth_strokes.end_s <= float(roller.sensor_to_world(cols.t[-1:])[0]) - 1.0
    truth_strokes = StrokeSet(*(getattr(truth_strokes, f)[keep] for f in
                                ("start_s", "end_s", "direction", "amplitude_m")))
    strokes = score_strokes(detected, truth_strokes)
    warnings = benchscore.closed_loop_warnings(roller, cols, loop.haptics, loop.commands)
    new_warnings = benchscore.offline_warnings(roller, cols, new_user.cues)
    result = SessionResult(
        seed=seed, session=session, kind="calibrated" if calibrated else "profile",
        stature_m=person.stature_m, duration_s=end, frames=len(t),
        position_rmse_mm=rmse, rolling_rmse_mm=rolling, position_error_p95_mm=p95,
        rolling_rmse_outside_faults_mm=outside,
        rolling_rmse_bound_mm=bounds.bound_mm, rolling_rmse_oracle_mm=bounds.oracle_mm,
        firmware_cpu_ms_per_s=roller.firmware_seconds / end * 1e3,
        firmware_cpu_by_replay=roller.cpu_by_replay,
        host_cpu_ms_per_s=loop.host_cpu_s / end * 1e3,
        offline_s_per_hour=offline_s / end * 3600.0,
        fifo_overflows=fw.imu.overflows, zone_scan_hz=fw.scanner.scans / end,
        spine=dataclasses.asdict(spine), new_user_spine=dataclasses.asdict(new_spine),
        strokes={"tp": strokes.true_positives, "misses": strokes.misses,
                 "false_alarms": strokes.false_alarms, "exact": strokes.exact_count,
                 "amplitude_errors_mm": strokes.amplitude_errors_mm.tolist(),
                 "latencies_ms": strokes.latencies_ms.tolist()},
        warnings=dataclasses.asdict(warnings), new_user_warnings=dataclasses.asdict(new_warnings),
        offline_matches_online=bool(same))
    return result, off_analyzer.learned_model(), held


def run_person(scenario: Scenario, seed: int, duration_s: float | None = None
               ) -> list[SessionResult]:
    """A calibrated first session, then a second one without calibration using the
    profile learned from the first. Both are on the same roller (the seed draws its
    parts): as built in the first session (its gyro's scale from a table roll, unless
    the scenario's ``roller.table_rolled`` is false), which then keeps what it learned
    of its parts (its state directory) for the second, as the real roller does."""
    first = dataclasses.replace(scenario, routine=dataclasses.replace(scenario.routine,
                                                                      calibration=True))
    second = dataclasses.replace(scenario, routine=dataclasses.replace(scenario.routine,
                                                                       calibration=False))
    with tempfile.TemporaryDirectory(prefix="smartroller-bench-") as state:
        if scenario.roller.table_rolled:
            table_roll(scenario, seed, Path(state))
        a, learned, held = run_session(first, seed, duration_s, session=0,
                                       state_dir=Path(state))
        b, _, _ = run_session(second, seed, duration_s, session=1, user=learned, held=held,
                              state_dir=Path(state))
    cpu, by_replay = firmware_cpu(first, seed, min(CPU_PROBE_S, a.duration_s))
    a.firmware_cpu_ms_per_s = b.firmware_cpu_ms_per_s = cpu
    a.firmware_cpu_by_replay = b.firmware_cpu_by_replay = by_replay
    return [a, b]


def table_roll(scenario: Scenario, seed: int, state_dir: Path) -> None:
    """The roller of ``seed`` as built (``table_roll_as_built``: its gyro's scale from a
    table roll, kept in ``state_dir``); a roll that fails is logged, the roller then
    new."""
    from firmware.sim.table_roll_rig import table_roll_as_built

    result = table_roll_as_built(scenario, seed, state_dir)
    if not result.ok:
        log.warning("seed %d: %s", seed, result.line())


CPU_PROBE_S = 120.0
"""Simulated seconds of the open-loop run that measures the firmware's CPU, s."""


def firmware_cpu(scenario: Scenario, seed: int, seconds: float) -> tuple[float, bool]:
    """The firmware's own CPU time per simulated second, ms, by replay
    (``SimRoller.firmware_seconds``), on an open-loop run: the host's commands of a
    closed-loop run reach the firmware outside the recorded tape, so it cannot be
    replayed. The flag says whether the replay gave it; False: the replay diverged and
    the in-situ meter's figure (the emulation's crossings taken out, not the firmware
    alone) stands in, said in one logged line."""
    from firmware.sim.rig import SimRoller

    roller = SimRoller(scenario, seed)
    roller.run(until=seconds)
    roller.close()
    ms = roller.firmware_seconds / seconds * 1e3
    by_replay = roller.cpu_by_replay
    if not by_replay:
        log.warning("seed %d: the firmware's CPU by the in-situ meter, not by replay (%s)",
                    seed, roller.cpu.diverged or "no replay")
    return ms, by_replay


def _run(args: tuple[Scenario, int, float | None]) -> list[SessionResult]:
    return run_person(*args)


def run_bench(scenarios: Sequence[Scenario] | None, seeds: int, duration_s: float | None = None,
              jobs: int | None = None, progress: Callable[[int, int], None] | None = None,
              names: Sequence[str] | None = None) -> dict:
    """Run the suite (``scenarios`` None: the default suite of ``seeds`` people; else
    ``seeds`` people per scenario); return the summary and the sessions, and with
    ``names`` (one per scenario) each scenario's own summary (``by_scenario``)."""
    if names is not None and (scenarios is None or len(names) != len(scenarios)):
        raise ValueError(f"{len(names)} names for "
                         f"{'no' if scenarios is None else len(scenarios)} scenarios")
    if scenarios is None:
        work = [(sc, seed, duration_s) for sc, seed in suite(seeds)]
    else:
        work = [(sc, seed, duration_s) for sc in scenarios for seed in range(1, seeds + 1)]
    results: list[SessionResult] = []
    groups: list[list[SessionResult]] = [[] for _ in scenarios or ()]
    for k, person in enumerate(ordered_map(_run, work, jobs)):
        results.extend(person)
        if groups:  # ``work`` holds each scenario's people together, in order
            groups[k // seeds].extend(person)
        if progress:
            progress(k + 1, len(work))
    out = {"summary": summarise(results),
           "sessions": [dataclasses.asdict(r) for r in results]}
    if names is not None:
        out["by_scenario"] = {name: summarise(group)
                              for name, group in zip(unique_names(names), groups, strict=True)}
    return out


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with a repeated one numbered (``a``, ``a#2``): keys for ``by_scenario``."""
    out: list[str] = []
    for name in names:
        key, k = name, 1
        while key in out:
            k += 1
            key = f"{name}#{k}"
        out.append(key)
    return out


def summarise(results: Sequence[SessionResult]) -> dict:
    """The pooled figures over sessions."""
    def pooled_rms(name: str) -> tuple[float | None, float | None]:
        values = np.array([getattr(r, name) for r in results])
        values = values[np.isfinite(values)]
        if not len(values):
            return None, None
        return float(np.sqrt(np.mean(values**2))), float(values.max())

    def accuracy(key: str, kind: str | None, count: str = "correct") -> float | None:
        """The share of ``key``'s scored frames (of sessions of ``kind``; None: all)
        that ``count`` counts."""
        rows = [getattr(r, key) for r in results if kind is None or r.kind == kind]
        frames = sum(s["frames"] for s in rows)
        return sum(s[count] for s in rows) / frames if frames else None

    def bound(kind: str) -> float | None:
        """The bound's share of the frames it scored (sessions of ``kind`` with a
        calibration: their own or their profile's)."""
        rows = [r.spine for r in results if r.kind == kind]
        frames = sum(s.get("bound_frames", 0) for s in rows)
        return sum(s.get("bound_correct", 0) for s in rows) / frames if frames else None

    def least(key: str, count: str) -> float | None:
        """The lowest per-session share of frames that ``count`` counts."""
        shares = [s[count] / s["frames"] for r in results if (s := getattr(r, key))["frames"]]
        return min(shares) if shares else None

    def error_pct(key: str, kind: str | None, q: float = 50.0) -> float | None:
        errs = [e for r in results if kind is None or r.kind == kind for e in getattr(r, key)[
            "vertebra_errors_mm"]]
        return float(np.percentile(errs, q)) if errs else None

    def pct(values: list[float], q: float) -> float | None:
        return float(np.percentile(values, q)) if values else None

    def warnings(key: str) -> dict:
        rows = [getattr(r, key) for r in results]
        exc = sum(w["excursions"] for w in rows)
        clear_h = sum(w["clear_rolling_s"] for w in rows) / 3600.0
        lead = [x for w in rows for x in w["delay_ms"]]
        return {"recall": sum(w["warned"] for w in rows) / exc if exc else None,
                "excursions": exc,
                "missed_depths_mm": [x for w in rows for x in w["missed_depths_mm"]],
                "false_alarms": sum(w["false_alarms"] for w in rows),
                "false_alarms_per_hour": (sum(w["false_alarms"] for w in rows) / clear_h
                                          if clear_h else None),
                "delay_ms_median": float(np.median(lead)) if lead else None,
                "delay_ms_max": float(np.max(lead)) if lead else None,
                "device_p99": pct([x for w in rows for x in w["device_latency_ms"]], 99),
                "host_p99": pct([x for w in rows for x in w["host_latency_ms"]], 99)}

    position, position_worst = pooled_rms("position_rmse_mm")
    rolling, rolling_worst = pooled_rms("rolling_rmse_mm")
    outside, outside_worst = pooled_rms("rolling_rmse_outside_faults_mm")
    rolling_bound, _ = pooled_rms("rolling_rmse_bound_mm")
    rolling_oracle, _ = pooled_rms("rolling_rmse_oracle_mm")
    st = [r.strokes for r in results]
    tp = sum(s["tp"] for s in st)
    fn = sum(s["misses"] for s in st)
    fp = sum(s["false_alarms"] for s in st)
    amp = [abs(x) for s in st for x in s["amplitude_errors_mm"]]
    lat = [x for s in st for x in s["latencies_ms"]]
    w = warnings("warnings")
    nw = warnings("new_user_warnings")
    return {
        "sessions": len(results),
        "people": len({(r.seed, r.stature_m) for r in results}),
        "simulated_s": sum(r.duration_s for r in results),
        "position_rmse_mm": position,
        "position_rmse_mm_worst": position_worst,
        "rolling_rmse_mm": rolling,
        "rolling_rmse_mm_worst": rolling_worst,
        "rolling_rmse_outside_faults_mm": outside,
        "rolling_rmse_outside_faults_mm_worst": outside_worst,
        "rolling_rmse_bound_mm": rolling_bound,
        "rolling_rmse_oracle_mm": rolling_oracle,
        "vertebra_error_mm_median": error_pct("spine", "calibrated"),
        "vertebra_error_mm_median_uncalibrated": error_pct("spine", "profile"),
        "vertebra_error_mm_median_new_user": error_pct("new_user_spine", None),
        "vertebra_error_mm_p95": error_pct("spine", "calibrated", 95.0),
        "vertebra_error_mm_p95_uncalibrated": error_pct("spine", "profile", 95.0),
        "vertebra_error_mm_p95_new_user": error_pct("new_user_spine", None, 95.0),
        "region_accuracy_calibrated": accuracy("spine", "calibrated"),
        "region_accuracy_uncalibrated": accuracy("spine", "profile"),
        "region_accuracy_new_user": accuracy("new_user_spine", None),
        "region_accuracy_oracle": accuracy("spine", "calibrated", "oracle_correct"),
        "region_accuracy_oracle_uncalibrated": accuracy("spine", "profile", "oracle_correct"),
        "region_accuracy_bound": bound("calibrated"),
        "region_accuracy_bound_uncalibrated": bound("profile"),
        "lumbar_accuracy_calibrated": accuracy("spine", "calibrated", "lumbar_correct"),
        "lumbar_accuracy_uncalibrated": accuracy("spine", "profile", "lumbar_correct"),
        "lumbar_accuracy_new_user": accuracy("new_user_spine", None, "lumbar_correct"),
        "uncertainty_coverage": accuracy("spine", None, "covered"),
        "uncertainty_coverage_min": least("spine", "covered"),
        "uncertainty_coverage_new_user": accuracy("new_user_spine", None, "covered"),
        "uncertainty_coverage_new_user_min": least("new_user_spine", "covered"),
        "stroke_precision": tp / (tp + fp) if tp + fp else None,
        "stroke_recall": tp / (tp + fn) if tp + fn else None,
        "stroke_f1": 2 * tp / (2 * tp + fn + fp) if tp + fn + fp else None,
        "stroke_amplitude_mae_mm": float(np.mean(amp)) if amp else None,
        "stroke_count_exact_fraction": sum(s["exact"] for s in st) / len(st) if st else None,
        "stroke_decision_ms_p99": pct(lat, 99),
        "warning_recall": w["recall"],
        "warning_excursions": w["excursions"],
        "warning_missed_depths_mm": w["missed_depths_mm"],
        "warning_delay_ms_median": w["delay_ms_median"],
        "warning_delay_ms_max": w["delay_ms_max"],
        "warning_latency_ms_p99_device": w["device_p99"],
        "warning_latency_ms_p99_host": w["host_p99"],
        "false_alarms": w["false_alarms"],
        "false_alarms_per_hour": w["false_alarms_per_hour"],
        "new_user_warning_recall": nw["recall"],
        "new_user_false_alarms_per_hour": nw["false_alarms_per_hour"],
        "firmware_cpu_ms_per_s": float(np.mean([r.firmware_cpu_ms_per_s for r in results])),
        "firmware_cpu_by_replay": all(r.firmware_cpu_by_replay for r in results),
        "host_cpu_ms_per_s": float(np.mean([r.host_cpu_ms_per_s for r in results])),
        "offline_analysis_s_per_hour": float(np.mean([r.offline_s_per_hour for r in results])),
        "offline_analysis_s_per_hour_max": float(max(r.offline_s_per_hour for r in results)),
        "offline_matches_online": all(r.offline_matches_online for r in results),
        "fifo_overflows": int(sum(r.fifo_overflows for r in results)),
        "zone_scan_hz_min": float(min(r.zone_scan_hz for r in results)),
    }
