"""What the simulated person does on the roller: the article's routine, seeded.

Phases (``Phase``): sit by the roller (no contact; the "start" button is pressed here),
lie back onto it with the roller even with the shoulder blades (first contact near the
scapula's inferior angle, +-1 level), raise the hips (the load rises to the person's
rolling share), roll the upper back in short strokes with pauses on sore spots, rests
with the hips lowered, elbows squeezed forward for some stretches, drifts toward and
sometimes below the rib cage, then get off (the load falls to zero, contact ends).

Everything is planned as knots joined by minimum-jerk transitions (zero speed and
acceleration at every knot; ``Knots`` and the curves are in ``firmware.sim.motion``),
so positions and loads are smooth to the second derivative. A stroke is one movement
in one direction between two knots, followed by a short turnaround hold; its period
(movement + hold) is 60 / cadence. Two strokes the same way follow each other only
after a stop (``SAME_WAY_STOP_S``).

Positions are along the back, m from C7, + toward the feet (see ``firmware.sim.body``).
Loads are shares of body weight. Times are s from the start of the session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from firmware.sim.body import Person
from firmware.sim.motion import Knots, min_jerk_inverse
from firmware.sim.scenario import RoutineSection

MAX_SHARE = 0.55
"""Largest share of body weight on the roller (Baumgart 2019: 15-55 %)."""
FENCE_MARGIN_M = 0.01
"""Ordinary strokes stay this far above T12/L1; only drifts (excursions) go below."""
SAME_WAY_STOP_S = 0.25
"""A person who goes on rolling the same way after a stroke stops first for at least
this long, s; without a stop the two would be one movement, not two strokes (the truth
would mark a boundary nothing on the roller or the back could show)."""
PUSH_SPEED_M_S = 0.2
"""Stroke speed at which the hips' push changes the load by the person's push gain."""
ELBOWS_RAMP_S = 0.6
"""Time to squeeze the elbows forward or let them back, s."""
PAIRING_HOLD = (0.3, 3.3)
"""(start s, length s) of the button hold that opens the pairing window, if asked."""
PAIRING_DELAY_S = 4.0
"""How much later everything else starts when the person first holds the button, s."""


class Phase(IntEnum):
    """What the person is doing."""

    SIT = 0  # sitting by the roller, no contact
    LIE_BACK = 1  # lying back onto the roller (contact begins midway)
    HIPS_UP = 2  # raising the hips
    ROLL = 3  # rolling (strokes, turnarounds, short holds)
    PAUSE = 4  # dwelling on a spot, breathing
    REST = 5  # hips lowered for a rest, no strokes
    GET_OFF = 6  # getting off (load falls to zero)
    OFF = 7  # off the roller
    CALIBRATE = 8  # rolling to and holding the calibration landmarks


@dataclass(frozen=True, eq=False)
class Strokes:
    """Ground-truth strokes (one movement in one direction each), arrays of length k.

    start_s, end_s: movement start and end, s. period_s: movement + turnaround hold, s
    (60 / period_s is the stroke's cadence, strokes/min). direction: +1 toward the feet,
    -1 toward the head. amplitude_m: length along the back, m. start_m, end_m: contact
    position at start and end, m from C7. excursion: the stroke belongs to a drift
    below the rib cage.
    """

    start_s: np.ndarray
    end_s: np.ndarray
    period_s: np.ndarray
    direction: np.ndarray
    amplitude_m: np.ndarray
    start_m: np.ndarray
    end_m: np.ndarray
    excursion: np.ndarray

    def __len__(self) -> int:
        return len(self.start_s)


@dataclass(frozen=True)
class Landmark:
    """A calibration landmark as the person held it.

    name: "top" (the top of the shoulders, meant to be C7/T1) or "bottom" (the bottom of
    the ribs, meant to be T12/L1). true_m: where the landmark really is, m from C7;
    held_m: where the person held the roller, m from C7. hold_start_s, hold_end_s: the
    hold, s. press_s: when the button was pressed, s.
    """

    name: str
    true_m: float
    held_m: float
    hold_start_s: float
    hold_end_s: float
    press_s: float


@dataclass(frozen=True)
class PlannedExcursion:
    """A drift below the rib cage as planned: start of the stroke that goes below (s),
    deepest point below T12/L1 (m) and the time to spend below (s)."""

    start_s: float
    depth_m: float
    duration_s: float


@dataclass(frozen=True, eq=False)
class RoutineSamples:
    """The routine sampled at times t (arrays of len(t)).

    contact_m: contact position along the back, m from C7 (NaN when not in contact).
    in_contact: the back touches the roller. share: share of body weight on the roller.
    slip_m: cumulative slide of the back over the roller, m (+ toward the feet).
    slip: inside a slip episode. elbows: 0 (relaxed) .. 1 (squeezed forward).
    phase: ``Phase`` codes. stroke_id: index into ``Strokes`` of the stroke in
    movement, -1 otherwise.
    """

    contact_m: np.ndarray
    in_contact: np.ndarray
    share: np.ndarray
    slip_m: np.ndarray
    slip: np.ndarray
    elbows: np.ndarray
    phase: np.ndarray
    stroke_id: np.ndarray


@dataclass(frozen=True, eq=False)
class Routine:
    """A planned session. Build with ``plan_routine``; sample with ``sample``.

    duration_s: the session's length, s (the scenario's, longer only if the demanded
    drifts could not fit). contact_on_s / contact_off_s: first touch / last touch, s.
    events: button presses [(t_s, duration_s)]. lateral_offset_m: the spine's distance
    from the roller's middle, m (+ toward the HEAD end cap). landmarks: the calibration's
    landmarks as held (empty without calibration).
    """

    duration_s: float
    contact_on_s: float
    contact_off_s: float
    roll_start_s: float
    roll_end_s: float
    position: Knots
    share: Knots
    push_gain: float
    breathing: Knots
    breathing_hz: float
    slip: Knots
    slip_intervals: np.ndarray
    elbows: Knots
    phase_starts: np.ndarray
    phase_codes: np.ndarray
    strokes: Strokes
    events: list[tuple[float, float]]
    excursions: list[PlannedExcursion]
    lateral_offset_m: float
    cadence_per_min: float
    landmarks: list[Landmark] = field(default_factory=list)

    def sample(self, t: np.ndarray) -> RoutineSamples:
        """The routine at times t (s), vectorised."""
        t = np.asarray(t, dtype=float)
        on = (t >= self.contact_on_s) & (t < self.contact_off_s)
        breath = self.breathing(t) * np.sin(2.0 * math.pi * self.breathing_hz * t)
        contact = np.where(on, self.position(t) + breath, np.nan)
        push = np.clip(self.position.rate(t) / PUSH_SPEED_M_S, -1.0, 1.0)
        share = np.clip(self.share(t) * (1.0 + self.push_gain * push), 0.0, MAX_SHARE) * on
        slip = np.zeros(t.shape, dtype=bool)
        if len(self.slip_intervals):
            k = np.searchsorted(self.slip_intervals[:, 0], t, side="right") - 1
            inside = k >= 0
            slip[inside] = t[inside] < self.slip_intervals[k[inside], 1]
        phase = self.phase_codes[np.searchsorted(self.phase_starts, t, side="right") - 1]
        stroke_id = np.full(t.shape, -1, dtype=np.int32)
        if len(self.strokes):
            k = np.searchsorted(self.strokes.start_s, t, side="right") - 1
            moving = (k >= 0) & (t < self.strokes.end_s[np.maximum(k, 0)])
            stroke_id[moving] = k[moving]
        return RoutineSamples(contact, on, share, self.slip(t), slip, self.elbows(t),
                              phase.astype(np.int8), stroke_id)


@dataclass
class _Plan:
    """Knot lists under construction; ``t`` and ``p`` are the planner's now and position."""

    t: float
    p: float
    pos: list[tuple[float, float]] = field(default_factory=list)
    share: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])
    breath: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])
    slip: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])
    slip_spans: list[tuple[float, float]] = field(default_factory=list)
    phases: list[tuple[float, int]] = field(default_factory=lambda: [(0.0, int(Phase.SIT))])
    strokes: list[tuple[float, ...]] = field(default_factory=list)
    excursions: list[PlannedExcursion] = field(default_factory=list)
    presses: list[tuple[float, float]] = field(default_factory=list)
    landmarks: list[Landmark] = field(default_factory=list)

    def phase(self, code: Phase) -> None:
        if self.phases[-1][1] == code:
            return
        if self.phases[-1][0] >= self.t:
            self.phases[-1] = (self.t, int(code))
        else:
            self.phases.append((self.t, int(code)))

    def move(self, to: float, duration: float) -> None:
        if duration <= 0:
            return
        self.t += duration
        self.p = to
        self.pos.append((self.t, to))

    def hold(self, duration: float, amplitude: float = 0.0) -> None:
        """Stay put for ``duration`` s, breathing with ``amplitude`` m if long enough."""
        if duration <= 0:
            return
        if amplitude > 0 and duration >= 1.5:
            ramp = min(1.0, duration / 3.0)
            t0 = self.t
            self.breath += [(t0, 0.0), (t0 + ramp, amplitude), (t0 + duration - ramp, amplitude),
                            (t0 + duration, 0.0)]
        self.move(self.p, duration)

    def ramp_share(self, to: float, duration: float, start: float | None = None) -> None:
        t0 = self.t if start is None else start
        last_t, last_v = self.share[-1]
        if t0 > last_t:
            self.share.append((t0, last_v))
        self.share.append((max(t0, last_t) + duration, to))

    def stroke(self, to: float, period: float, hold_frac: float, excursion: bool,
               slip: tuple[float, float, float] | None = None) -> None:
        """One stroke to ``to`` (m): movement over period * (1 - hold_frac), then hold.
        Going on the same way as the last stroke, the person first stops for
        ``SAME_WAY_STOP_S``, its hold included."""
        moving = period * (1.0 - hold_frac)
        direction = 1 if to > self.p else -1
        if self.strokes and self.strokes[-1][3] == direction:
            self.hold(SAME_WAY_STOP_S - (self.t - self.strokes[-1][1]))
        start, p0 = self.t, self.p
        self.strokes.append((start, start + moving, period, direction, abs(to - p0), p0, to,
                             excursion))
        if slip is not None:
            frac, length, displacement = slip
            s0 = start + frac * (moving - length)
            total = self.slip[-1][1]
            self.slip += [(s0, total), (s0 + length, total + displacement)]
            self.slip_spans.append((s0, s0 + length))
        self.move(to, moving)
        self.hold(period - moving)


class _Roller:
    """The stateful planner of the rolling part of a session, for one person."""

    def __init__(self, person: Person, params: RoutineSection, rng: np.random.Generator,
                 plan: _Plan) -> None:
        self.rng, self.params, self.plan = rng, params, plan
        self.cmin, self.cmax = params.cadence_per_min
        self.lmin, self.lmax = params.stroke_length_m
        self.cadence = float(np.clip(rng.normal(30.0, 7.0), self.cmin, self.cmax))
        self.length = self.lmin + (self.lmax - self.lmin) * rng.beta(2.0, 3.0)
        self.hold_frac = rng.uniform(0.0, 0.15)
        self.breath_m = rng.uniform(0.3e-3, 0.7e-3)
        self.drift = rng.uniform(0.002, 0.006)
        self.fence = person.rib_cage_end_m
        self.top = float(person.position_at(max(person.scapula_spine_level - 1.0, 1.5)))
        self.bottom = self.fence - FENCE_MARGIN_M
        self.direction = 1 if rng.random() < 0.5 else -1

    # -- ordinary strokes ----------------------------------------------------------
    def period(self) -> tuple[float, float]:
        """(period s, turnaround hold fraction) of the next stroke."""
        c = float(np.clip(self.cadence * (1 + self.rng.normal(0, 0.1)), self.cmin, self.cmax))
        return 60.0 / c, float(np.clip(self.hold_frac + self.rng.normal(0, 0.03), 0.0, 0.25))

    def _slip(self, period: float, hold: float, amplitude: float
              ) -> tuple[float, float, float] | None:
        """A slip episode in this stroke, or None (2-6 mm over 0.2-0.5 s, either way)."""
        frac, length = self.rng.random(), self.rng.uniform(0.2, 0.5)
        size, sign = self.rng.uniform(0.002, 0.006), float(self.rng.choice((-1.0, 1.0)))
        chance = 1.0 - math.exp(-self.params.slip_rate_per_min * period / 60.0)
        if self.rng.random() >= chance:
            return None
        if length > 0.8 * period * (1 - hold) or 2 * size > amplitude:
            return None
        return frac, length, sign * size

    def stroke_to(self, to: float, excursion: bool = False,
                  timing: tuple[float, float] | None = None) -> None:
        """One stroke from the current position to ``to`` (m)."""
        period, hold = timing or self.period()
        amplitude = abs(to - self.plan.p)
        if amplitude < 1e-4:
            self.plan.hold(period)
            return
        self.plan.stroke(to, period, hold, excursion, self._slip(period, hold, amplitude))

    def ordinary_stroke(self, centre: float) -> None:
        """A stroke around ``centre`` (m), within the stroke range and above the ribs' end."""
        p = self.plan.p
        length = float(np.clip(self.length * (1 + self.rng.normal(0, 0.25)),
                               self.lmin, self.lmax))
        for d in (self.direction, -self.direction):
            room = self.bottom - p if d > 0 else p - self.top
            if room >= self.lmin:
                a = float(np.clip(d * (centre - p) + length / 2, self.lmin, self.lmax))
                self.stroke_to(p + d * min(a, room))
                self.direction = -d
                return
        d = 1 if self.bottom - p > p - self.top else -1  # cramped: the longest stroke left
        self.stroke_to(p + d * max(self.bottom - p, p - self.top))
        self.direction = -d

    # -- a drift below the rib cage ------------------------------------------------
    def excursion(self, depth: float, duration: float) -> None:
        """Roll down to ``depth`` m below T12/L1, stay below ``duration`` s, go back up.

        Strokes lead down until one ordinary-length stroke reaches the target; below the
        fence the person dwells (breathing) and, if the drift is deep enough, strokes
        without crossing back; then one stroke brings the contact back above the ribs'
        end. The time below is planned exactly; if even the fastest strokes of the
        cadence range spend longer below, the drift lasts longer than asked.
        """
        plan, lmin, lmax = self.plan, self.lmin, self.lmax
        target = self.fence + depth
        shortest = max(lmin, depth + FENCE_MARGIN_M)
        for _ in range(200):
            p, need = plan.p, target - plan.p
            if self.direction > 0:
                if shortest <= need <= lmax:
                    break
                room = self.bottom - p
                if need > lmax and room < lmin:
                    break  # ranges in conflict: the drift's stroke will be longer
                if need > lmax:
                    self.stroke_to(p + min(lmax, room))
                self.direction = -1
            else:
                lo, hi = max(lmin, shortest - need), min(lmax, lmax - need, p - self.top)
                a = self.rng.uniform(lo, hi) if lo <= hi else min(lmin, max(p - self.top, 0.0))
                self.stroke_to(p - a)
                self.direction = 1
        p = plan.p
        up = float(self.rng.uniform(max(lmin, depth + FENCE_MARGIN_M), lmax))
        (t1, h1), (t2, h2) = self.period(), self.period()
        below = self._below(p, target, up, t1, h1, t2, h2)
        if below > duration:  # as fast as the cadence range allows
            t1, h1, t2, h2 = 60.0 / self.cmax, 0.0, 60.0 / self.cmax, 0.0
            below = self._below(p, target, up, t1, h1, t2, h2)
        plan.excursions.append(PlannedExcursion(plan.t, depth, duration))
        plan.phase(Phase.ROLL)
        self.stroke_to(target, True, (t1, h1))
        middle = max(duration - below, 0.0)
        pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []
        sub_max = min(lmax, depth - FENCE_MARGIN_M)
        while sub_max >= lmin:
            pair = self.period(), self.period()
            if pair[0][0] + pair[1][0] > middle:
                break
            pairs.append(pair)
            middle -= pair[0][0] + pair[1][0]
        plan.phase(Phase.PAUSE)
        plan.hold(middle, self.breath_m)
        plan.phase(Phase.ROLL)
        for first, second in pairs:
            self.stroke_to(target - self.rng.uniform(lmin, sub_max), True, first)
            self.stroke_to(target, True, second)
        self.stroke_to(target - up, True, (t2, h2))
        self.direction = 1

    def _below(self, p: float, target: float, up: float, t1: float, h1: float, t2: float,
               h2: float) -> float:
        """Time below T12/L1 in the stroke from p down to target and the one back up by up."""
        cross_down = min_jerk_inverse((self.fence - p) / (target - p))
        cross_up = min_jerk_inverse((target - self.fence) / up)
        return t1 * (1 - h1) * (1 - cross_down) + t1 * h1 + t2 * (1 - h2) * cross_up

    # -- calibration ---------------------------------------------------------------
    def calibrate(self, person: Person, error_m: float) -> None:
        """Roll up to the top of the shoulders, hold, press; down to the bottom of the
        ribs, hold, press. Each landmark is held where the person feels it: the top with
        N(0, error_m), the bottom with N(-3 mm, error_m) (on the last ribs, a little
        high), never more than 8 mm below T12/L1 nor 20 mm off. Each roll is one movement
        at 6-12 cm/s; each hold 3-5 s with the press 1-2 s into it."""
        rng, plan = self.rng, self.plan
        plan.phase(Phase.CALIBRATE)
        top_true = float(person.position_at(1.0))
        bottom_true = self.fence
        top = top_true + float(np.clip(rng.normal(0.0, error_m), -0.02, 0.02))
        bottom = bottom_true + float(np.clip(rng.normal(-0.003, error_m), -0.02, 0.008))
        for name, true_m, held_m in (("top", top_true, top), ("bottom", bottom_true, bottom)):
            distance = abs(held_m - plan.p)
            moving = max(1.0, distance / rng.uniform(0.06, 0.12))
            if distance > 1e-4:
                self.stroke_to(held_m, timing=(moving, 0.0))
            hold = rng.uniform(3.0, 5.0)
            press = plan.t + rng.uniform(1.0, 2.0)
            plan.presses.append((press, rng.uniform(0.15, 0.3)))
            plan.landmarks.append(Landmark(name, true_m, held_m, plan.t, plan.t + hold, press))
            plan.hold(hold, self.breath_m)
        self.direction = -1
        plan.phase(Phase.ROLL)

    # -- pauses and rests ----------------------------------------------------------
    def pause(self, duration: float, share: float) -> None:
        """Dwell on a sore spot, breathing, sinking in a little (+0-6 % load)."""
        plan = self.plan
        plan.phase(Phase.PAUSE)
        if duration >= 1.2:
            plan.ramp_share(share * (1 + self.rng.uniform(0.0, 0.06)), 0.5)
            plan.ramp_share(share, 0.5, start=plan.t + duration - 0.5)
        plan.hold(duration, self.breath_m)
        plan.phase(Phase.ROLL)

    def rest(self, timing: tuple[float, float, float], share: float, rest_share: float) -> None:
        """Lower the hips (load up, no strokes), rest, raise them: (down, hold, up) s."""
        plan = self.plan
        down, hold, up = timing
        shift = float(np.clip(self.rng.normal(0.0, 0.005), -0.01, 0.01))
        shift = float(np.clip(plan.p + shift, self.top, self.bottom)) - plan.p
        plan.phase(Phase.REST)
        plan.ramp_share(rest_share, down)
        plan.move(plan.p + shift, down)
        plan.hold(hold, self.breath_m)
        plan.ramp_share(share, up)
        plan.move(plan.p - shift, up)
        plan.phase(Phase.ROLL)


def _elbow_knots(rng: np.random.Generator, fraction: float, start: float,
                 end: float) -> Knots:
    """Bouts of elbows squeezed forward over [start, end] s, ``fraction`` of the time.

    Bouts last U(8, 28) s; the gaps are exponential with the mean that gives the
    fraction; each change takes ``ELBOWS_RAMP_S``.
    """
    knots = [(0.0, 0.0)]
    if fraction <= 0.0 or end - start < 2 * ELBOWS_RAMP_S:
        return Knots(*map(np.array, zip(*knots, strict=True)))
    if fraction >= 0.999:
        bouts = [(start, end)]
    else:
        bouts, t = [], start
        on = rng.random() < fraction
        while t < end:
            span = rng.uniform(8.0, 28.0)
            if not on:
                span = rng.exponential(18.0 * (1 - fraction) / fraction)
            if on:
                bouts.append((t, min(t + span, end)))
            t += span
            on = not on
    for a, b in bouts:
        if b - a >= 2 * ELBOWS_RAMP_S and a > knots[-1][0]:
            knots += [(a, 0.0), (a + ELBOWS_RAMP_S, 1.0), (b - ELBOWS_RAMP_S, 1.0), (b, 0.0)]
    t_k, v_k = (np.array(x) for x in zip(*knots, strict=True))
    return Knots(t_k, v_k)


def _knots(pairs: list[tuple[float, float]]) -> Knots:
    """Knots from (t, v) pairs, dropping any that do not move time forward."""
    t_out, v_out = [pairs[0][0]], [pairs[0][1]]
    for t, v in pairs[1:]:
        if t > t_out[-1] + 1e-9:
            t_out.append(t)
            v_out.append(v)
        else:
            v_out[-1] = v
    return Knots(np.array(t_out), np.array(v_out))


def plan_routine(person: Person, params: RoutineSection, duration_s: float,
                 rng: np.random.Generator) -> Routine:
    """Plan one session of ``duration_s`` s for ``person`` (all randomness from ``rng``).

    Timeline: sit 2-4 s (4 s more after a pairing hold of the button, if asked; the
    button pressed 0.5-1.2 s before lying back, held 0.15-0.3 s);
    lie back 1.5-3 s (contact midway, load up to 15-22 % of body weight); raise the
    hips 1-2 s (load up to the rolling share); roll; get off 1.5-3 s (load to zero);
    stay off 0.5-2 s. Demanded drifts below the ribs are spread over the rolling time;
    without a demand (``lumbar_excursions`` omitted) a person who has drifted down to
    the bottom of the ribs goes on below 30 % of the time.
    """
    share = person.roller_share
    sit = rng.uniform(2.0, 4.0) + (PAIRING_DELAY_S if params.pairing_hold else 0.0)
    press_at, press_len = sit - rng.uniform(0.5, 1.2), rng.uniform(0.15, 0.3)
    lie, hips = rng.uniform(1.5, 3.0), rng.uniform(1.0, 2.0)
    get_off, tail = rng.uniform(1.5, 3.0), rng.uniform(0.5, 2.0)
    lie_share = min(rng.uniform(0.15, 0.22), 0.9 * share)
    rest_share = min(MAX_SHARE, share + rng.uniform(0.05, 0.10))
    push_gain = rng.uniform(0.03, 0.08)
    breathing_hz = rng.uniform(0.2, 0.3)
    lateral = float(np.clip(rng.normal(0.0, 0.015), -0.04, 0.04))
    first_level = person.scapula_inferior_level + float(np.clip(rng.normal(0, 0.5), -1, 1))
    if params.start_level is not None:  # (drawn all the same: the other draws stay)
        first_level = params.start_level
    settle, raise_shift = rng.normal(0.0, 0.004), rng.normal(0.0, 0.008)

    t_on = sit + 0.5 * lie
    roll_start = sit + lie + hips
    roll_end = max(duration_s - tail - get_off, roll_start + 1.0)
    plan = _Plan(t=t_on, p=0.0)
    roller = _Roller(person, params, rng, plan)
    first = float(np.clip(person.position_at(first_level), roller.top + 0.02,
                          roller.bottom - 0.03))
    plan.p = first
    plan.pos.append((t_on, first))

    plan.t = sit
    plan.phase(Phase.LIE_BACK)
    plan.t = t_on
    plan.ramp_share(lie_share, sit + lie - t_on)
    plan.move(float(np.clip(first + settle, roller.top, roller.bottom)), sit + lie - t_on)
    plan.phase(Phase.HIPS_UP)
    plan.ramp_share(share, hips)
    plan.move(float(np.clip(plan.p + raise_shift, roller.top, roller.bottom)), hips)
    plan.phase(Phase.ROLL)
    elbows = _elbow_knots(rng, params.elbows_forward_fraction, roll_start, roll_end)
    if params.calibration:
        roller.calibrate(person, params.landmark_error_m)

    demanded = params.lumbar_excursions
    lo_d, hi_d = params.excursion_depth_m
    lo_s, hi_s = params.excursion_duration_s
    if demanded:
        slot = (roll_end - roll_start) / demanded
        todo = [roll_start + slot * (i + rng.uniform(0.15, 0.45)) for i in range(demanded)]
    else:
        todo = []
    progress = max(roller.lmax - roller.lmin, 0.01)  # per pair of strokes heading down

    def reserve() -> float:
        """Time one drift may need from here, s."""
        pairs = math.ceil(max(roller.fence + hi_d - plan.p, 0.0) / progress)
        return hi_s + (3 + 2 * pairs) * 1.1 * 60.0 / roller.cadence

    centre = plan.p
    lmin = roller.lmin

    def up_target() -> float:
        return roller.top + rng.uniform(0.1, 0.4) * (roller.bottom - roller.top)

    while True:
        remaining = roll_end - plan.t
        period = 60.0 / roller.cadence
        if todo and (plan.t >= todo[0] or remaining - period <= reserve() * len(todo)):
            todo.pop(0)
            roller.excursion(rng.uniform(lo_d, hi_d), rng.uniform(lo_s, hi_s))
            centre = up_target()
            continue
        if remaining < 2 * period:
            break
        u = rng.random()
        p_pause = 1 - math.exp(-params.pause_rate_per_min * period / 60.0)
        p_rest = 1 - math.exp(-params.hips_lowered_rate_per_min * period / 60.0)
        if u < p_pause:
            dwell = rng.uniform(*params.pause_duration_s)
            if dwell < remaining - reserve() * len(todo):
                roller.pause(dwell, share)
                continue
        elif u < p_pause + p_rest:
            timing = rng.uniform(0.8, 1.3), rng.uniform(3.0, 10.0), rng.uniform(0.8, 1.3)
            if sum(timing) < remaining - reserve() * len(todo):
                roller.rest(timing, share, rest_share)
                continue
        roller.ordinary_stroke(centre)
        centre = float(np.clip(centre + rng.normal(roller.drift, 0.005),
                               roller.top + lmin / 2, roller.bottom - lmin / 2))
        if centre + roller.length / 2 >= roller.bottom - 0.005:  # down at the ribs' end
            if demanded is None and rng.random() < 0.3 and remaining > 2 * reserve():
                roller.excursion(rng.uniform(lo_d, hi_d), rng.uniform(lo_s, hi_s))
            centre = up_target()
    plan.hold(roll_end - plan.t, roller.breath_m)

    plan.phase(Phase.GET_OFF)
    plan.ramp_share(0.0, get_off)
    off_shift = min(rng.uniform(0.0, 0.03), max(roller.bottom - plan.p, 0.0))
    plan.move(plan.p + off_shift, get_off)
    t_off = plan.t
    plan.phase(Phase.OFF)
    duration = max(duration_s, t_off + tail)

    rows = plan.strokes
    cols = list(zip(*rows, strict=True)) if rows else [()] * 8
    strokes = Strokes(*(np.array(c, dtype=float) for c in cols[:3]),
                      np.array(cols[3], dtype=np.int8), *(np.array(c, dtype=float)
                                                          for c in cols[4:7]),
                      np.array(cols[7], dtype=bool))
    starts, codes = zip(*plan.phases, strict=True)
    return Routine(
        duration_s=duration, contact_on_s=t_on, contact_off_s=t_off,
        roll_start_s=roll_start, roll_end_s=roll_end,
        position=_knots(plan.pos), share=_knots(plan.share), push_gain=push_gain,
        breathing=_knots(plan.breath), breathing_hz=breathing_hz,
        slip=_knots(plan.slip), slip_intervals=np.array(plan.slip_spans).reshape(-1, 2),
        elbows=elbows, phase_starts=np.array(starts), phase_codes=np.array(codes, np.int8),
        strokes=strokes, events=[*([PAIRING_HOLD] if params.pairing_hold else []),
                                 (float(press_at), float(press_len)), *plan.presses],
        excursions=plan.excursions, lateral_offset_m=lateral, cadence_per_min=roller.cadence,
        landmarks=plan.landmarks)
