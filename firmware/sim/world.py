"""The simulated world: a person rolling their upper back on the roller, at 1 kHz.

``World(scenario, profile, seed)`` draws the person (``firmware.sim.body``), plans their
session (``firmware.sim.routine``), draws how this roller deviates from its hardware
profile, and precomputes the whole session with numpy. It offers two faces:

- what the sensors physically experience: ``imu_motion(times)`` (specific force and
  angular rate in the MPU-6050's frame) and ``band_patch_forces(t)`` (force through
  each FSR band at the back and floor patches). The emulated devices are built on these.
- the ground truth: ``truth`` (arrays at 1 kHz, the very arrays the sensors are driven
  by), ``truth_at(times)``, ``person``, ``roller``, ``events`` (button presses). The
  firmware never sees these; only the simulator glue, tests and the benchmark do.

Geometry. World axes: x along the floor toward the person's feet, z up, y = z cross x.
The roller axis is horizontal along y; ``u`` = -y is the unit vector toward the end cap
marked HEAD (the person lies with that cap on their right). The roll angle theta is
the right-handed rotation about ``u``; it is chosen so that theta increasing moves the
contact along the back toward the feet. Rolling without slip on both patches:

- contact along the back: ds = r_top * dtheta (+ the slide during slip episodes),
  r_top = r - F / k (F: body load, N; k: true foam stiffness, N/m);
- the axle on the floor: v = -r_bottom * omega along x, r_bottom = r - (F + m g) / k,
  and the axle height is r_bottom (the floor patch carries the roller's weight too).

IMU. The sensor's axis ``profile.imu.roller_axis`` lies along the roller, pointing to
HEAD if ``roller_axis_sign`` is +1 (away if -1); the in-plane axes are the next two in
cyclic order (x: y, z; y: z, x; z: x, y), a right-handed frame. At theta = 0 the
second in-plane axis points up. The IMU sits ``roller.imu_offset_m`` from the axis on
the second in-plane axis. At rest the accelerometer reads (a1, a2) = g (sign sin
theta, cos theta), so ``sign * atan2(a1, a2) = theta`` (identical to atan2(a1, a2) for
sign +1; a right-handed sensor turned end for end sees the angle mirrored), and the
gyro about the roller axis reads sign * dtheta/dt. A small misalignment (two rotations
about the in-plane axes) tilts the sensor off the roller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from firmware.config import Config
from firmware.sim.body import G, Person, sample_person
from firmware.sim.routine import Routine, Strokes, plan_routine
from firmware.sim.scenario import Scenario

FS_HZ = 1000.0
"""Rate of the precomputed session, Hz."""

_AXES = {"x": (1, 2, 0), "y": (2, 0, 1), "z": (0, 1, 2)}
"""roller_axis -> sensor indices of (first in-plane, second in-plane, along the roller)."""

_LEVEL_GRID = np.arange(-3.0, 22.0 + 1e-9, 0.02)
"""Levels at which the lateral load profile is tabulated."""
_LATERAL_STEP_M = 0.001


@dataclass(frozen=True, eq=False)
class FenceCrossings:
    """When the contact crossed T12/L1 (the end of the rib cage).

    down_s: times of crossing toward the feet, s. up_s: times of crossing back toward
    the head, s. depth_m: deepest point below T12/L1 between each down crossing and
    the next up crossing, m.
    """

    down_s: np.ndarray
    up_s: np.ndarray
    depth_m: np.ndarray

    def __len__(self) -> int:
        return len(self.down_s)


@dataclass(frozen=True, eq=False)
class Truth:
    """Ground truth, arrays over time (1 kHz in ``World.truth``).

    t: s. contact_m: contact along the back, m from C7, + toward the feet (NaN when not
    in contact). in_contact: bool. level: continuous level index (0 = C7, 13 = L1;
    NaN off). region: ``Region`` codes (-1 off). phase: ``Phase`` codes.
    total_load_n: body load on the roller, N. zone_loads_n: (n, zones) body load
    through each band, N (sums to total_load_n). roll_angle_rad: theta, unwrapped.
    roll_rate_rad_s: dtheta/dt. r_eff_m: rolling radius at the back, m.
    axle_accel_m_s2: (n, 2) acceleration of the roller's axle (x toward the feet, z up).
    slip: in a slip episode. elbows_forward: elbows squeezed forward. stroke_id: index
    into ``strokes`` of the stroke in movement (-1 none). strokes: the strokes.
    crossings: T12/L1 crossings. fence_m: T12/L1, m from C7.
    """

    t: np.ndarray
    contact_m: np.ndarray
    in_contact: np.ndarray
    level: np.ndarray
    region: np.ndarray
    phase: np.ndarray
    total_load_n: np.ndarray
    zone_loads_n: np.ndarray
    roll_angle_rad: np.ndarray
    roll_rate_rad_s: np.ndarray
    r_eff_m: np.ndarray
    axle_accel_m_s2: np.ndarray
    slip: np.ndarray
    elbows_forward: np.ndarray
    stroke_id: np.ndarray
    strokes: Strokes
    crossings: FenceCrossings
    fence_m: float


_CONTINUOUS = ("total_load_n", "zone_loads_n", "roll_angle_rad", "roll_rate_rad_s", "r_eff_m",
               "axle_accel_m_s2")
_DISCRETE = ("in_contact", "region", "phase", "slip", "elbows_forward", "stroke_id")


@dataclass(frozen=True)
class RollerTruth:
    """This roller as built (vs the profile): radius_m, stiffness_n_per_m (true foam
    stiffness), imu_offset_m (true IMU distance from the axis), misalignment_rad (tilts
    about the first and second in-plane axes), mass_kg, initial_angle_rad (theta at 0 s)."""

    radius_m: float
    stiffness_n_per_m: float
    imu_offset_m: float
    misalignment_rad: tuple[float, float]
    mass_kg: float
    initial_angle_rad: float


class World:
    """One simulated session: person, routine, roller physics and ground truth.

    scenario: what happens; profile: the hardware profile (the true roller deviates from
    it as the scenario's [roller] section says); seed: draws everything random. The
    person, the routine and the roller draw from independent streams of the seed.
    session: which of this person's sessions (0, 1, 2 ...): the same person on the same
    roller, each session with its own routine (the routine's stream of seed and session).
    """

    def __init__(self, scenario: Scenario, profile: Config, seed: int, session: int = 0) -> None:
        self.scenario, self.profile, self.seed, self.session = scenario, profile, seed, session
        streams = np.random.SeedSequence(seed).spawn(3)
        if session:  # the same person on the same roller, another day's routine
            streams[1] = np.random.SeedSequence(seed, spawn_key=(1, session))
        person_rng, routine_rng = (np.random.default_rng(s) for s in streams[:2])
        ps = scenario.person
        self.person: Person = sample_person(person_rng, stature_m=ps.stature_m, sex=ps.sex,
                                            weight_kg=ps.weight_kg,
                                            roller_share=ps.roller_share)
        self.routine: Routine = plan_routine(self.person, scenario.routine,
                                             scenario.session.duration_s, routine_rng)
        self.roller = draw_roller(scenario, profile, seed)
        self.duration_s: float = self.routine.duration_s
        self.events: list[tuple[float, float]] = list(self.routine.events)
        self.fence_m: float = self.person.rib_cage_end_m
        self._zone_tables = self._tabulate_zones()
        self._mount = mounting_matrix(profile.imu.roller_axis, self.roller.misalignment_rad)
        self._sign = float(profile.imu.roller_axis_sign)
        self.truth, alpha = self._simulate()
        self._kin = np.column_stack([self.truth.roll_angle_rad, self.truth.roll_rate_rad_s,
                                     alpha, self.truth.axle_accel_m_s2])
        """(n, 5) theta, omega, alpha, axle x and z acceleration: what the IMU feels."""
        weight = self.roller.mass_kg * G * self._band_widths / profile.roller.length_m
        self._roller_weight_n = weight

    # -- the sensors' face ---------------------------------------------------------
    def imu_motion(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True (specific force (n,3) m/s^2, angular rate (n,3) rad/s) in the MPU-6050's
        sensor frame at ``times`` (s; clamped to the session)."""
        k = lerp_rows(self._kin, np.atleast_1d(np.asarray(times, dtype=float)))
        return sensor_motion(k, self._mount, self._sign, self.roller.imu_offset_m)

    def band_patch_forces(self, t: float | np.ndarray) -> np.ndarray:
        """Force through each FSR band at the (top = back, bottom = floor) patches, N.

        Shape (zones, 2) for a scalar t (s), (n, zones, 2) for an array. The top patch
        carries the body load through the band, the bottom one that plus the band's share
        of the roller's weight; a patch on the band's seam dead arc carries nothing to the
        sensor (top: theta within dead_arc/2 of seam_angle_deg; bottom: of seam + 180).
        """
        times = np.atleast_1d(np.asarray(t, dtype=float))
        loads = lerp_rows(self.truth.zone_loads_n, times)
        theta = lerp_rows(self.truth.roll_angle_rad[:, None], times)[:, 0]
        zones = self.profile.zones
        half, seam = math.radians(zones.dead_arc_deg) / 2, math.radians(zones.seam_angle_deg)
        top_live = np.abs(_wrap(theta - seam)) > half
        bottom_live = np.abs(_wrap(theta - seam - math.pi)) > half
        out = np.stack([loads * top_live[:, None],
                        (loads + self._roller_weight_n) * bottom_live[:, None]], axis=-1)
        return out[0] if np.ndim(t) == 0 else out

    # -- the truth's face ----------------------------------------------------------
    def truth_at(self, times: np.ndarray) -> Truth:
        """The truth at arbitrary times (s): continuous fields interpolated linearly,
        flags and codes from the nearest sample; contact and level NaN off the roller."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        tr = self.truth
        near = np.clip(np.rint(times * FS_HZ).astype(np.intp), 0, len(tr.t) - 1)
        values = {name: lerp_rows(getattr(tr, name), times) for name in _CONTINUOUS}
        values |= {name: getattr(tr, name)[near] for name in _DISCRETE}
        on = values["in_contact"]
        for name in ("contact_m", "level"):
            v = lerp_rows(getattr(tr, name), times)
            v = np.where(np.isnan(v), getattr(tr, name)[near], v)
            values[name] = np.where(on, v, np.nan)
        return replace(tr, t=times, **values)

    def zone_fractions(self, level: float | np.ndarray, elbows: float | np.ndarray = 0.0
                       ) -> np.ndarray:
        """Share of the body load through each band for the level under the roller and
        the elbows (0 relaxed .. 1 forward): (zones,) or (n, zones), rows sum to 1."""
        lv = np.atleast_1d(np.asarray(level, dtype=float))
        e = np.broadcast_to(np.asarray(elbows, dtype=float), lv.shape)
        out = self._fractions(lv, e)
        return out[0] if np.ndim(level) == 0 else out

    # -- building ------------------------------------------------------------------
    def _simulate(self) -> tuple[Truth, np.ndarray]:
        """The session at 1 kHz: (truth, angular acceleration rad/s^2)."""
        n = int(round(self.duration_s * FS_HZ)) + 1
        t = np.arange(n) / FS_HZ
        rs = self.routine.sample(t)
        person, roller = self.person, self.roller
        on = rs.in_contact
        load = rs.share * person.weight_n
        r_top = roller.radius_m - load / roller.stiffness_n_per_m
        r_bottom = r_top - roller.mass_kg * G / roller.stiffness_n_per_m
        both = on[:-1] & on[1:]
        ds = np.where(both, np.diff(np.where(on, rs.contact_m, 0.0)), 0.0)
        rolled = ds - np.where(both, np.diff(rs.slip_m), 0.0)
        dtheta = rolled / (0.5 * (r_top[:-1] + r_top[1:]))
        theta = roller.initial_angle_rad + np.concatenate(([0.0], np.cumsum(dtheta)))
        dt = 1.0 / FS_HZ
        omega = np.gradient(theta, dt)
        alpha = np.gradient(omega, dt)
        ax = np.gradient(-r_bottom * omega, dt)
        az = np.gradient(np.gradient(r_bottom, dt), dt)
        level = np.asarray(person.level_at(rs.contact_m))
        region = np.where(on, person.region_at(np.where(on, rs.contact_m, 0.0)), -1)
        zone_loads = np.zeros((n, self.profile.zones.count))
        idx = np.flatnonzero(on)
        zone_loads[idx] = load[idx, None] * self._fractions(level[idx], rs.elbows[idx])
        truth = Truth(
            t=t, contact_m=rs.contact_m, in_contact=on, level=level,
            region=region.astype(np.int8), phase=rs.phase, total_load_n=load,
            zone_loads_n=zone_loads, roll_angle_rad=theta, roll_rate_rad_s=omega,
            r_eff_m=r_top, axle_accel_m_s2=np.column_stack([ax, az]), slip=rs.slip & on,
            elbows_forward=(rs.elbows > 0.5) & on, stroke_id=rs.stroke_id,
            strokes=self.routine.strokes,
            crossings=_crossings(t, rs.contact_m, on, self.fence_m), fence_m=self.fence_m)
        return truth, alpha

    def _tabulate_zones(self) -> tuple[np.ndarray, np.ndarray]:
        """Band shares of the lateral profile over ``_LEVEL_GRID``: (levels, 2 * zones),
        elbows relaxed then forward, and the step to the next level's row.

        Bands tile the roller: each runs from the midpoints to its neighbours, the outer
        ones to the roller's ends, so every newton on the roller goes through one band.
        """
        zones, length = self.profile.zones, self.profile.roller.length_m
        centres = np.asarray(zones.lateral_positions_m, dtype=float)
        order = np.argsort(centres)
        inner = 0.5 * (centres[order][1:] + centres[order][:-1])
        edges = np.concatenate(([-length / 2], inner, [length / 2]))
        widths = np.empty(len(centres))
        widths[order] = np.diff(edges)
        self._band_widths = widths
        cells = int(round(length / _LATERAL_STEP_M))
        x = -length / 2 + (np.arange(cells) + 0.5) * length / cells
        band = order[np.clip(np.searchsorted(inner, x), 0, len(centres) - 1)]
        onehot = np.zeros((cells, len(centres)))
        onehot[np.arange(cells), band] = 1.0
        body_x = x - self.routine.lateral_offset_m
        tables = []
        for elbows in (0.0, 1.0):
            profile = self.person.lateral_profile(body_x, _LEVEL_GRID, elbows)
            per_band = profile @ onehot
            tables.append(per_band / per_band.sum(axis=1, keepdims=True))
        table = np.concatenate(tables, axis=1)
        return table, np.diff(table, axis=0, append=table[-1:])

    def _fractions(self, level: np.ndarray, elbows: np.ndarray) -> np.ndarray:
        """Band shares for levels (n,) and elbows (n,): bilinear in the tables."""
        table, step = self._zone_tables  # (levels, 2 * zones): relaxed | forward
        x = (np.clip(level, _LEVEL_GRID[0], _LEVEL_GRID[-1]) - _LEVEL_GRID[0]) / 0.02
        i0 = np.clip(x.astype(np.intp), 0, len(_LEVEL_GRID) - 2)
        f = table[i0]
        f += step[i0] * (x - i0)[:, None]
        zones = f.shape[1] // 2
        relaxed, forward = f[:, :zones], f[:, zones:]
        forward -= relaxed
        forward *= np.clip(elbows, 0.0, 1.0)[:, None]
        return relaxed + forward


def sensor_motion(kin: np.ndarray, mount: np.ndarray, sign: float, imu_offset_m: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """True (specific force (n, 3) m/s^2, angular rate (n, 3) rad/s) in the MPU-6050's
    sensor frame from the roller's kinematics ``kin`` (n, 5): roll angle theta (rad),
    rate (rad/s), angular acceleration (rad/s^2), the axle's horizontal and vertical
    acceleration (m/s^2); ``mount``, ``sign``: ``World.mounting``; the IMU this far
    from the axis, m."""
    theta, omega, alpha, ax, az = kin[:, 0], kin[:, 1], kin[:, 2], kin[:, 3], kin[:, 4]
    c, s = np.cos(theta), np.sin(theta)
    gz = az + G
    d = imu_offset_m
    a1 = sign * (ax * c + gz * s - alpha * d)
    a2 = gz * c - ax * s - omega * omega * d
    force = a1[:, None] * mount[:, 0] + a2[:, None] * mount[:, 1]
    rate = (sign * omega)[:, None] * mount[:, 2]
    return force, rate


def draw_roller(scenario: Scenario, profile: Config, seed: int) -> RollerTruth:
    """The true roller of ``seed`` (the same in every session of its person): every draw
    is made whatever the scenario fixes (stable streams)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    sc = scenario.roller
    stiffness_err = float(np.clip(rng.normal(0.0, 0.05), -0.2, 0.2))
    offset_err = float(np.clip(rng.normal(0.0, 0.002), -0.005, 0.005))
    tilt = np.clip(rng.normal(0.0, 1.0, 2), -3.0, 3.0)
    theta0 = rng.uniform(0.0, 2 * math.pi)
    if sc.foam_stiffness_error is not None:
        stiffness_err = sc.foam_stiffness_error
    if sc.imu_offset_error_m is not None:
        offset_err = sc.imu_offset_error_m
    if sc.misalignment_deg is not None:
        tilt = np.asarray(sc.misalignment_deg, dtype=float)
    return RollerTruth(
        radius_m=profile.roller.diameter_m / 2,
        stiffness_n_per_m=profile.roller.foam_stiffness_n_per_m * (1 + stiffness_err),
        imu_offset_m=max(profile.roller.imu_offset_m + offset_err, 0.0),
        misalignment_rad=(math.radians(tilt[0]), math.radians(tilt[1])),
        mass_kg=sc.mass_kg, initial_angle_rad=theta0)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix by ``angle`` rad about unit vector ``axis`` (Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def mounting_matrix(roller_axis: str, misalignment_rad: tuple[float, float]) -> np.ndarray:
    """(3, 3): columns map (first in-plane, second in-plane, roller axis) components to
    the sensor's x, y, z readings, including the misalignment."""
    first, second, axis = _AXES[roller_axis]
    place = np.zeros((3, 3))
    place[first, 0] = place[second, 1] = place[axis, 2] = 1.0
    eye = np.eye(3)
    tilt = _rotation(eye[first], misalignment_rad[0]) @ _rotation(eye[second],
                                                                   misalignment_rad[1])
    return tilt.T @ place


def lerp_rows(table: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows of a table sampled at ``FS_HZ`` from 0 s, at times
    (s), clamped to its ends."""
    x = times * FS_HZ
    i0 = np.clip(np.floor(x).astype(np.intp), 0, len(table) - 2)
    fr = np.clip(x - i0, 0.0, 1.0)
    if table.ndim > 1:
        fr = fr[:, None]
    return table[i0] + (table[i0 + 1] - table[i0]) * fr


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _crossings(t: np.ndarray, contact: np.ndarray, on: np.ndarray,
               fence: float) -> FenceCrossings:
    below = on & (contact > fence)
    both = on[:-1] & on[1:]
    down = np.flatnonzero(both & ~below[:-1] & below[1:])
    up = np.flatnonzero(both & below[:-1] & ~below[1:])

    def when(i: np.ndarray) -> np.ndarray:
        return t[i] + (fence - contact[i]) / (contact[i + 1] - contact[i]) * (t[1] - t[0])

    depth = np.full(len(down), np.nan)
    for k, i in enumerate(down):
        later = up[up > i]
        end = later[0] + 1 if len(later) else len(t)
        depth[k] = np.nanmax(contact[i:end]) - fence
    return FenceCrossings(when(down), when(up), depth)


