"""The simulated world: body, routine, roller physics, sensor faces and ground truth."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from firmware.config import default_config
from firmware.schema import SchemaError, describe, read_toml
from firmware.sim.body import (
    L1,
    S1,
    T1,
    G,
    Region,
    average_person,
    sample_person,
    spine_boundaries,
)
from firmware.sim.routine import SAME_WAY_STOP_S, Phase
from firmware.sim.scenario import (
    SCENARIO_DIR,
    Scenario,
    default_scenario,
    load_scenario,
    scenario_from_table,
)
from firmware.sim.world import FS_HZ, World

AXES = {"x": (1, 2, 0), "y": (2, 0, 1), "z": (0, 1, 2)}  # first, second in-plane, roller


def _scenario(**sections: dict) -> Scenario:
    return scenario_from_table(sections)


def _profile(axis: str = "x", sign: int = 1):  # noqa: ANN202
    base = default_config()
    return dataclasses.replace(
        base, imu=dataclasses.replace(base.imu, roller_axis=axis, roller_axis_sign=sign))


@pytest.fixture(scope="module")
def world() -> World:
    """A 10-minute default session, IMU exactly aligned."""
    return World(_scenario(roller={"misalignment_deg": [0.0, 0.0]}), default_config(), 2)


@pytest.fixture(scope="module")
def busy() -> World:
    """A 3-minute session with three demanded drifts, many slips and elbows forward."""
    sc = _scenario(session={"duration_s": 180.0},
                   routine={"lumbar_excursions": 3, "excursion_depth_m": [0.02, 0.04],
                            "excursion_duration_s": [2.0, 5.0], "slip_rate_per_min": 12.0,
                            "elbows_forward_fraction": 0.5})
    return World(sc, default_config(), 11)


# -- body -------------------------------------------------------------------------------
def test_anatomy_proportions_and_level_order() -> None:
    avg = average_person(1.80)
    b = avg.boundaries_m
    assert b[0] == 0.0 and np.all(np.diff(b) > 0)
    assert avg.region_length_m("thoracic") == pytest.approx(0.18 * 1.80, rel=1e-9)
    assert avg.region_length_m("lumbar") == pytest.approx(0.11 * 1.80, rel=1e-9)
    spans = np.diff(b[T1:L1])
    assert spans[-1] > spans[0]  # thoracic vertebrae grow toward T12
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(200):
        p = sample_person(rng)
        assert np.all(np.diff(p.boundaries_m) > 0)
        ratios.append((p.region_length_m("thoracic") / p.stature_m,
                       p.region_length_m("lumbar") / p.stature_m))
        assert 4.0 <= p.scapula_inferior_level_standing - 0.5 <= 11.0
        assert p.scapula_inferior_level == p.scapula_inferior_level_standing + 1.0
        assert p.scapula_spine_m < p.scapula_inferior_angle_m < p.rib_cage_end_m
    ratios = np.array(ratios)
    assert ratios[:, 0].mean() == pytest.approx(0.18, abs=0.005)
    assert ratios[:, 1].mean() == pytest.approx(0.11, abs=0.004)
    assert 0.02 < ratios[:, 0].std() / 0.18 < 0.09  # ~5 % individual variation


def test_levels_and_regions() -> None:
    p = average_person(1.70)
    b = p.boundaries_m
    np.testing.assert_allclose(p.level_at(b), np.arange(len(b)), atol=1e-12)
    assert p.level_at(float(b[3] + b[4]) / 2) == pytest.approx(3.5)
    assert p.rib_cage_end_m == b[L1]
    assert p.level_at(p.rib_cage_end_m) == pytest.approx(13.0)
    assert p.level_at(-0.01) < 0 and p.level_at(b[S1] + 0.05) > 18
    mids = (b[:-1] + b[1:]) / 2
    codes = p.region_at(mids)
    expected = [0] + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 5
    assert codes.tolist() == expected
    assert p.region_at(float(mids[6])) is Region.MID_THORACIC
    assert np.isnan(p.level_at(np.array([np.nan, 0.1]))[0])
    np.testing.assert_allclose(p.position_at(p.level_at(mids)), mids)


def test_population_range_and_overrides() -> None:
    rng = np.random.default_rng(5)
    people = [sample_person(rng) for _ in range(400)]
    stature = np.array([p.stature_m for p in people])
    male = np.array([p.sex == "male" for p in people])
    assert stature.min() >= 1.50 and stature.max() <= 2.00
    assert stature[male].mean() - stature[~male].mean() > 0.09
    bmi = np.array([p.weight_kg / p.stature_m**2 for p in people])
    assert 17 <= bmi.min() and bmi.max() <= 40 and bmi.mean() == pytest.approx(24, abs=0.6)
    share = np.array([p.roller_share for p in people])
    assert share.min() >= 0.25 and share.max() <= 0.45
    a = sample_person(np.random.default_rng(9))
    b = sample_person(np.random.default_rng(9), weight_kg=99.0)
    assert b.weight_kg == 99.0 and b.stature_m == a.stature_m and b.sex == a.sex
    with pytest.raises(ValueError):
        average_person(2.1)
    with pytest.raises(TypeError):
        sample_person(rng, height=1.8)
    assert len(spine_boundaries(1.75)) == 19


# -- routine and truth -----------------------------------------------------------------
def test_phases_button_and_load(world: World) -> None:
    tr = world.truth
    order = [int(c) for c in world.routine.phase_codes]
    assert order[:4] == [Phase.SIT, Phase.LIE_BACK, Phase.HIPS_UP, Phase.ROLL]
    assert order[-2:] == [Phase.GET_OFF, Phase.OFF]
    (press_t, press_len), = world.events
    assert 0.1 <= press_len <= 0.35
    on = np.flatnonzero(tr.in_contact)
    assert press_t + press_len < tr.t[on[0]]  # pressed while sitting, before lying back
    assert tr.phase[int(press_t * FS_HZ)] == Phase.SIT
    assert np.all(tr.total_load_n[~tr.in_contact] == 0)
    assert np.all(np.isnan(tr.contact_m[~tr.in_contact]))
    rolling = tr.phase == Phase.ROLL
    share = tr.total_load_n[rolling] / world.person.weight_n
    assert 0.15 <= share.min() and share.max() <= 0.55
    assert np.median(share) == pytest.approx(world.person.roller_share, rel=0.05)
    rest = tr.phase == Phase.REST
    assert rest.any()
    assert tr.total_load_n[rest].max() > np.median(tr.total_load_n[rolling])
    first = tr.contact_m[on[0]]
    assert abs(world.person.level_at(first) - world.person.scapula_inferior_level) <= 1.0 + 1e-9


def test_rolling_without_slip_reproduces_contact(busy: World) -> None:
    tr = busy.truth
    on = tr.in_contact
    pair = on[:-1] & on[1:]
    steady = pair & ~tr.slip[:-1] & ~tr.slip[1:]
    ds = np.diff(tr.contact_m)
    rolled = 0.5 * (tr.r_eff_m[:-1] + tr.r_eff_m[1:]) * np.diff(tr.roll_angle_rad)
    assert np.abs(ds[steady] - rolled[steady]).max() < 1e-9
    assert np.all(np.diff(tr.roll_angle_rad)[~pair] == 0)  # the roller rests off the body
    k = busy.roller.stiffness_n_per_m
    np.testing.assert_allclose(tr.r_eff_m, busy.roller.radius_m - tr.total_load_n / k)
    # during each slip episode the back slides 2-6 mm more (or less) than the roller turns
    edges = np.flatnonzero(np.diff(tr.slip.astype(int)))
    assert len(edges) >= 4
    for a, b in zip(edges[::2], edges[1::2], strict=False):
        mismatch = np.sum(ds[a:b + 1] - rolled[a:b + 1])
        assert 0.002 - 1e-6 <= abs(mismatch) <= 0.006 + 1e-6
        assert 0.2 - 0.002 <= (b - a) / FS_HZ <= 0.5 + 0.002


def test_strokes_within_scenario_ranges(world: World) -> None:
    s = world.truth.strokes
    lmin, lmax = world.scenario.routine.stroke_length_m
    cmin, cmax = world.scenario.routine.cadence_per_min
    assert len(s) > 100
    ordinary = ~s.excursion
    assert s.amplitude_m[ordinary].min() >= lmin - 1e-9
    assert s.amplitude_m.max() <= lmax + 1e-9
    cadence = 60.0 / s.period_s
    assert cadence.min() >= cmin - 1e-9 and cadence.max() <= cmax + 1e-9
    assert np.all(s.end_s > s.start_s) and np.all(s.start_s[1:] >= s.end_s[:-1])
    tr = world.truth
    i0 = np.rint(s.start_s * FS_HZ).astype(int)
    i1 = np.rint(s.end_s * FS_HZ).astype(int)
    np.testing.assert_allclose(tr.contact_m[i0], s.start_m, atol=2e-4)
    np.testing.assert_allclose(tr.contact_m[i1], s.end_m, atol=2e-4)
    np.testing.assert_array_equal(np.sign(s.end_m - s.start_m), s.direction)
    mid = np.rint((s.start_s + s.end_s) / 2 * FS_HZ).astype(int)
    np.testing.assert_array_equal(tr.stroke_id[mid], np.arange(len(s)))
    rolling_min = np.sum(np.isin(tr.phase, [Phase.ROLL])) / FS_HZ / 60
    assert cmin * 0.8 <= len(s) / rolling_min <= cmax * 1.05
    # ordinary strokes stay above the end of the ribs
    assert np.all(s.end_m[ordinary] <= tr.fence_m - 0.01 + 1e-9)


def test_a_stroke_going_on_the_same_way_starts_after_a_stop() -> None:
    # The vigorous scenario's person 1 comes back from a drift below the ribs with no
    # room to turn and rolls on up: without the stop the truth had two strokes where the
    # roller saw one movement.
    sc = load_scenario(SCENARIO_DIR / "vigorous.toml")
    sc = dataclasses.replace(sc, routine=dataclasses.replace(sc.routine, calibration=False))
    s = World(sc, default_config(), 1, session=1).truth.strokes
    same = s.direction[1:] == s.direction[:-1]
    assert same.any()
    stops = s.start_s[1:][same] - s.end_s[:-1][same]
    assert stops.min() >= SAME_WAY_STOP_S - 1e-9


def test_the_gyro_range_covers_the_fastest_rolling() -> None:
    # A gyro at full scale clips: the roller loses rotation and its position jumps (the
    # vigorous scenario reaches ~350 deg/s, beyond the MPU-6050's +-250 range).
    sc = load_scenario(SCENARIO_DIR / "vigorous.toml")
    fastest = max(float(np.max(np.abs(World(sc, default_config(), seed).truth.roll_rate_rad_s)))
                  for seed in (1, 2, 3))
    assert 250.0 < math.degrees(fastest) < 0.8 * default_config().imu.gyro_range_dps


def test_demanded_excursions_appear_as_fence_crossings(busy: World) -> None:
    c = busy.truth.crossings
    assert len(c.down_s) == 3 and len(c.up_s) == 3
    assert np.all(c.down_s < c.up_s) and np.all(c.up_s[:-1] < c.down_s[1:])
    below = c.up_s - c.down_s
    assert np.all((below >= 2.0 - 0.01) & (below <= 5.0 + 0.01))
    assert np.all((c.depth_m >= 0.02 - 0.001) & (c.depth_m <= 0.04 + 0.001))
    tr = busy.truth
    deep = tr.contact_m > tr.fence_m
    assert np.all(tr.region[deep] == Region.LUMBAR) and np.all(tr.level[deep] > 13.0)
    assert busy.duration_s == 180.0


@pytest.mark.parametrize("seed", [0, 3, 8])
def test_demo_drifts_below_the_ribs_once(seed: int) -> None:
    w = World(load_scenario(SCENARIO_DIR / "demo.toml"), default_config(), seed)
    c = w.truth.crossings
    assert w.duration_s == 50.0
    hold_at, hold_for = w.events[0]  # the pairing hold comes before the start press
    assert hold_for > 3.0 and hold_at + hold_for < w.events[1][0] < w.routine.contact_on_s
    assert len(c.down_s) == 1 and len(c.up_s) == 1 and c.depth_m[0] > 0.02
    assert w.truth.contact_m[w.truth.in_contact][-1] < w.fence_m  # back up before getting off


def test_no_excursion_when_none_demanded() -> None:
    sc = _scenario(session={"duration_s": 300.0}, routine={"lumbar_excursions": 0})
    for seed in (1, 2):
        w = World(sc, default_config(), seed)
        assert len(w.truth.crossings) == 0
        assert np.nanmax(w.truth.contact_m) < w.fence_m


# -- IMU ---------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", ["x", "y", "z"])
@pytest.mark.parametrize("sign", [1, -1])
def test_imu_at_rest_reads_gravity_at_theta(axis: str, sign: int) -> None:
    sc = _scenario(session={"duration_s": 40.0}, roller={"misalignment_deg": [0.0, 0.0]})
    w = World(sc, _profile(axis, sign), 4)
    first, second, along = AXES[axis]
    times = np.arange(0.0, 1.5, 0.05)  # sitting: the roller lies still
    force, rate = w.imu_motion(times)
    np.testing.assert_allclose(np.linalg.norm(force, axis=1), G, atol=1e-9)
    assert abs(G - 9.81) < 0.01
    theta = w.truth_at(times).roll_angle_rad
    angle = sign * np.arctan2(force[:, first], force[:, second])
    np.testing.assert_allclose(np.angle(np.exp(1j * (angle - theta))), 0.0, atol=1e-9)
    np.testing.assert_allclose(force[:, along], 0.0, atol=1e-12)
    np.testing.assert_allclose(rate, 0.0, atol=1e-12)


@pytest.mark.parametrize("axis,sign", [("x", 1), ("z", -1)])
def test_imu_gyro_rate_and_kinematics(axis: str, sign: int) -> None:
    sc = _scenario(session={"duration_s": 60.0}, roller={"misalignment_deg": [0.0, 0.0]})
    w = World(sc, _profile(axis, sign), 6)
    tr = w.truth
    first, second, along = AXES[axis]
    idx = np.arange(10_000, 50_000, 7)
    force, rate = w.imu_motion(tr.t[idx])
    rate_fd = np.gradient(tr.roll_angle_rad, 1 / FS_HZ)[idx]
    assert np.abs(rate_fd).max() > 0.5  # it rolls
    np.testing.assert_allclose(rate[:, along], sign * rate_fd, atol=1e-9)
    np.testing.assert_allclose(np.delete(rate, along, axis=1), 0.0, atol=1e-12)
    # independent check: the IMU's position in the world, differentiated twice
    th, om = tr.roll_angle_rad, tr.roll_rate_rad_s
    r_floor = tr.r_eff_m - w.roller.mass_kg * G / w.roller.stiffness_n_per_m
    v_axle = -r_floor * om  # along x, toward the feet
    x_axle = np.concatenate(([0.0], np.cumsum(0.5 * (v_axle[1:] + v_axle[:-1]) / FS_HZ)))
    d = w.roller.imu_offset_m
    px, pz = x_axle - d * np.sin(th), r_floor + d * np.cos(th)
    fx = np.gradient(np.gradient(px, 1 / FS_HZ), 1 / FS_HZ)
    fz = np.gradient(np.gradient(pz, 1 / FS_HZ), 1 / FS_HZ) + G
    a1 = sign * (fx * np.cos(th) + fz * np.sin(th))
    a2 = -fx * np.sin(th) + fz * np.cos(th)
    np.testing.assert_allclose(force[:, first], a1[idx], atol=5e-3)
    np.testing.assert_allclose(force[:, second], a2[idx], atol=5e-3)
    dynamic = force[:, first] - sign * G * np.sin(th[idx])
    assert np.abs(dynamic).max() > 0.05  # the motion terms are there


def test_imu_misalignment_tilts_gravity_into_the_roller_axis() -> None:
    sc = _scenario(session={"duration_s": 40.0}, roller={"misalignment_deg": [2.0, -1.0]})
    w = World(sc, default_config(), 4)
    force, _ = w.imu_motion(np.array([0.5]))
    assert np.linalg.norm(force) == pytest.approx(G)
    assert 1e-4 * G < abs(force[0, 0]) <= math.sin(math.radians(math.sqrt(5.0))) * G


# -- loads and the strip -----------------------------------------------------------------
def test_zone_loads_sum_to_total_load(world: World) -> None:
    tr = world.truth
    np.testing.assert_allclose(tr.zone_loads_n.sum(axis=1), tr.total_load_n, atol=1e-9)
    assert tr.zone_loads_n.min() >= 0.0
    patches = world.band_patch_forces(np.array([100.0, 200.0, 300.0]))
    assert patches.shape == (3, world.profile.zones.count, 2)
    assert world.band_patch_forces(100.0).shape == (world.profile.zones.count, 2)


def test_dead_arc_zeroes_a_patch() -> None:
    sc = _scenario(session={"duration_s": 60.0})
    probe = World(sc, default_config(), 3)
    i = int(np.argmax(probe.truth.total_load_n))
    theta = probe.truth.roll_angle_rad[i]
    roller_n = probe.roller.mass_kg * G
    for dead, live, seam in ((0, 1, theta), (1, 0, theta - math.pi)):
        base = default_config()
        zones = dataclasses.replace(base.zones, seam_angle_deg=math.degrees(seam) % 360.0,
                                    dead_arc_deg=12.0)
        w = World(sc, dataclasses.replace(base, zones=zones), 3)
        tr = w.truth
        f = w.band_patch_forces(tr.t[i])
        assert np.all(f[:, dead] == 0.0) and f[:, live].sum() > 100
        gap = np.angle(np.exp(1j * (tr.roll_angle_rad - theta)))
        far = np.flatnonzero((tr.total_load_n > 100) & (np.abs(gap) > math.radians(10)))
        assert len(far)
        f = w.band_patch_forces(tr.t[far[0]])
        load = tr.total_load_n[far[0]]
        assert f[:, 0].sum() == pytest.approx(load)
        assert f[:, 1].sum() == pytest.approx(load + roller_n)
        np.testing.assert_allclose(f[:, 0], tr.zone_loads_n[far[0]])


def test_lateral_profile_scapula_midback_elbows(world: World) -> None:
    p = world.person
    centre, beside = [3, 4], [2, 5]  # bands at +-2.5 cm and +-7.5 cm (default profile)
    scap_level = (p.scapula_spine_level + p.scapula_inferior_level) / 2
    under = world.zone_fractions(scap_level, 0.0)
    forward = world.zone_fractions(scap_level, 1.0)
    low_ribs = world.zone_fractions(12.0, 0.0)
    lumbar = world.zone_fractions(15.5, 0.0)
    for f in (under, forward, low_ribs, lumbar):
        assert f.sum() == pytest.approx(1.0)
    assert under[beside].sum() > under[centre].sum()  # two humps: the shoulder blades
    assert low_ribs[centre].sum() > low_ribs[beside].sum()  # narrow lower rib profile
    assert forward[centre].sum() > under[centre].sum() + 0.05  # scapulae out of the way
    assert np.abs(lumbar - low_ribs).sum() > 0.1
    x = np.linspace(-0.2, 0.2, 401)
    prof = p.lateral_profile(x, 15.5)
    assert prof[200] < prof[np.argmin(np.abs(x - 0.05))]  # lumbar middle lifts off
    tr = world.truth
    elbows = tr.elbows_forward & (np.abs(tr.level - scap_level) < 1)
    relaxed = ~tr.elbows_forward & tr.in_contact & (np.abs(tr.level - scap_level) < 1)
    assert elbows.sum() > 1000 and relaxed.sum() > 1000
    share = tr.zone_loads_n[:, centre].sum(axis=1) / np.maximum(tr.total_load_n, 1e-9)
    assert share[elbows].mean() > share[relaxed].mean()


# -- scenarios ----------------------------------------------------------------------------
def test_unknown_or_bad_scenario_keys_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(SchemaError, match=r"routine\.cadence_per_minute: unknown key"):
        _scenario(routine={"cadence_per_minute": [20, 30]})
    with pytest.raises(SchemaError, match=r"person\.stature_m"):
        _scenario(person={"stature_m": 2.3})
    with pytest.raises(SchemaError, match=r"routine\.stroke_length_m"):
        _scenario(routine={"stroke_length_m": [0.2, 0.05]})
    with pytest.raises(SchemaError, match="speed"):
        _scenario(session={"speed": 2.0})
    path = tmp_path / "bad.toml"
    path.write_text("[roller]\nmisalignment_deg = [1.0]\n")
    with pytest.raises(SchemaError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_builtin_scenarios() -> None:
    assert load_scenario(SCENARIO_DIR / "default.toml") == default_scenario()
    assert default_scenario().session.duration_s == 600.0
    assert default_scenario().person.stature_m is None
    demo = load_scenario(SCENARIO_DIR / "demo.toml")
    assert 30 <= demo.session.duration_s <= 60 and demo.routine.lumbar_excursions == 1
    read_toml(SCENARIO_DIR / "demo.toml")
    long = load_scenario(SCENARIO_DIR / "long.toml")  # the default, for 30 minutes
    assert long.session.duration_s == 1800.0
    assert dataclasses.replace(long, session=default_scenario().session) == default_scenario()
    doc = (SCENARIO_DIR.parents[2] / "docs" / "scenarios.md").read_text()
    for path in SCENARIO_DIR.glob("*.toml"):
        load_scenario(path)
        assert f"`{path.name}`" in doc, f"{path.name} is not in docs/scenarios.md"
    for key, *_ in describe(Scenario):
        assert f"`{key}`" in doc


def test_same_seed_same_world_other_seed_other_person() -> None:
    sc = _scenario(session={"duration_s": 60.0})
    a, b, c = (World(sc, default_config(), s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.truth.contact_m, b.truth.contact_m)
    np.testing.assert_array_equal(a.truth.zone_loads_n, b.truth.zone_loads_n)
    np.testing.assert_array_equal(a.imu_motion(np.arange(5.0, 6.0, 0.1))[0],
                                  b.imu_motion(np.arange(5.0, 6.0, 0.1))[0])
    assert a.events == b.events and a.roller == b.roller
    assert (a.person.stature_m, a.person.weight_kg) != (c.person.stature_m, c.person.weight_kg)
    fixed = _scenario(session={"duration_s": 60.0},
                      person={"stature_m": 1.8, "sex": "male", "weight_kg": 80.0})
    d = World(fixed, default_config(), 7)
    assert (d.person.stature_m, d.person.sex, d.person.weight_kg) == (1.8, "male", 80.0)


def test_truth_at_interpolates(world: World) -> None:
    tr = world.truth
    times = np.array([0.5, 100.0005, 250.25, world.duration_s + 5])
    at = world.truth_at(times)
    assert np.isnan(at.contact_m[0]) and not at.in_contact[0]
    i = 100_000
    assert at.contact_m[1] == pytest.approx((tr.contact_m[i] + tr.contact_m[i + 1]) / 2)
    assert at.zone_loads_n.shape == (4, world.profile.zones.count)
    assert at.phase[3] == Phase.OFF


def test_calibration_holds_the_landmarks_where_the_person_feels_them() -> None:
    sc = _scenario(session={"duration_s": 90.0}, routine={"calibration": True})
    for seed in range(6):
        w = World(sc, default_config(), seed)
        top, bottom = w.routine.landmarks
        person, tr = w.person, w.truth
        assert top.true_m == pytest.approx(float(person.position_at(1.0)))
        assert bottom.true_m == pytest.approx(person.rib_cage_end_m)
        assert abs(top.held_m - top.true_m) <= 0.02
        assert -0.02 <= bottom.held_m - bottom.true_m <= 0.008
        for mark in (top, bottom):
            assert mark.hold_start_s + 1.0 <= mark.press_s <= mark.hold_end_s - 0.5
            hold = (tr.t >= mark.hold_start_s) & (tr.t <= mark.hold_end_s)
            assert np.all(np.abs(tr.contact_m[hold] - mark.held_m) < 1.5e-3)  # breathing
            assert np.all(tr.phase[hold] == Phase.CALIBRATE)
        presses = [t for t, _ in w.events]
        assert presses[1:] == [top.press_s, bottom.press_s]


def test_without_calibration_there_are_no_landmarks(world: World) -> None:
    assert world.routine.landmarks == []
    assert len(world.events) == 1


def test_later_sessions_are_the_same_person_on_the_same_roller_rolling_anew() -> None:
    sc = _scenario(session={"duration_s": 60.0})
    first, again, later = (World(sc, default_config(), 11, k) for k in (0, 0, 2))
    np.testing.assert_array_equal(first.truth.contact_m, again.truth.contact_m)
    np.testing.assert_array_equal(first.person.boundaries_m, later.person.boundaries_m)
    assert first.person.stature_m == later.person.stature_m
    assert first.roller == later.roller
    assert first.routine.contact_on_s != later.routine.contact_on_s
    assert not np.allclose(first.truth.contact_m, later.truth.contact_m, equal_nan=True)
