"""The bench's spine figures on made-up truths: coverage, the oracle's and the bound's
regions, lumbar."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from firmware.sim.body import Person, average_person, sample_person
from firmware.sim.routine import Phase
from host.analysis.calibration import Calibration, Landmark
from host.analysis.model import Estimates, Region
from host.analysis.profile import UserModel
from host.bench.scoring import (
    held_calibration,
    held_landmarks_m,
    oracle_back_m,
    oracle_body,
    region_codes,
    score_spine,
)
from host.bench.suite import SessionResult, summarise

PERSON = average_person(1.75)


def _fake(contact_m: np.ndarray, person=PERSON):
    """A roller whose truth has the contacts ``contact_m`` (m from C7), all rolling."""
    level = np.asarray(person.level_at(contact_m))
    truth = SimpleNamespace(phase=np.full(len(contact_m), int(Phase.ROLL)), level=level,
                            region=np.asarray(person.region_at(contact_m)),
                            contact_m=contact_m)
    world = SimpleNamespace(person=person, truth_at=lambda t: truth)
    return SimpleNamespace(world=world, sensor_to_world=lambda t: t)


def _estimates(level: np.ndarray, sd_m: np.ndarray, person=PERSON) -> Estimates:
    n = len(level)
    est = Estimates.unknown(n)
    est.level[:] = level
    est.region[:] = [int(Region.at_level(x)) for x in level]
    est.back_m[:] = person.position_at(level)
    est.sd_m[:] = sd_m
    est.p_below_ribs[:] = 0.0
    return est


def test_coverage_counts_the_frames_within_two_reported_sd():
    contact = np.full(10, float(PERSON.position_at(8.0)))
    cols = SimpleNamespace(t=np.arange(10.0))
    # Estimates 0, 5, 10, ..., 45 mm toward the feet of the truth, each with an SD of 10 mm:
    # within 2 SD (20 mm) are the first five.
    est = _estimates(np.asarray(PERSON.level_at(contact + np.arange(10) * 0.005)),
                     np.full(10, 0.010))
    score = score_spine(_fake(contact), cols, est, sample_every=1)
    assert score.frames == 10
    assert score.covered == 5
    assert score.coverage == 0.5
    # the same errors with an SD of 2 mm: only the exact one is covered
    est.sd_m[:] = 0.002
    assert score_spine(_fake(contact), cols, est).covered == 1


def test_lumbar_accuracy_counts_agreement_on_lumbar_or_not():
    person = PERSON
    # contacts at levels 8.5, 11.5, 12.9 and 13.5 (L1); estimates at 8.5 (right), 13.2
    # (wrong: lumbar), 12.5 (right) and 12.8 (wrong: not lumbar)
    contact = np.asarray(person.position_at(np.array([8.5, 11.5, 12.9, 13.5])))
    est = _estimates(np.array([8.5, 13.2, 12.5, 12.8]), np.full(4, 0.01))
    score = score_spine(_fake(contact), SimpleNamespace(t=np.arange(4.0)), est)
    assert score.lumbar_correct == 2
    assert score.correct == 2  # the region too: the first and the third


def test_the_oracle_body_puts_the_landmarks_where_they_are():
    rng = np.random.default_rng(3)
    person = sample_person(rng, stature_m=1.68)
    body = oracle_body(person)
    top, bottom = (float(person.position_at(x)) for x in (1.0, 13.0))
    back = oracle_back_m(person, body, np.array([top, bottom]))
    np.testing.assert_allclose(body.level_at(back), [1.0, 13.0], atol=1e-9)


def test_the_oracle_misses_what_the_body_model_cannot_know():
    """A person whose T5 lies off the stature's average: the oracle, calibrated on T1 and
    L1 only, gets the frames between the true and the modelled T5 wrong."""
    b = PERSON.boundaries_m.copy()
    b[5] += 0.006  # T5 starts 6 mm lower than the average spine says
    person = Person(PERSON.stature_m, PERSON.sex, PERSON.weight_kg, PERSON.roller_share, b)
    edge = float(PERSON.position_at(5.0))  # where the oracle puts T5
    contact = edge + np.array([-0.010, 0.002, 0.004, 0.010])  # two between the edges
    est = _estimates(np.asarray(person.level_at(contact)), np.full(4, 0.01), person)
    score = score_spine(_fake(contact, person), SimpleNamespace(t=np.arange(4.0)), est)
    assert score.correct == 4
    assert score.oracle_correct == 2


def _landmarks(person: Person) -> tuple[float, float]:
    """T1 and T12/L1 of ``person``, m from C7."""
    return float(person.position_at(1.0)), float(person.position_at(13.0))


def test_a_perfect_calibration_bounds_at_the_oracle():
    """Landmarks held exactly where they are, and a span the pooling keeps (a profile
    that knew it already): the bound's region is the oracle's, frame by frame, also
    where the body model's levels miss the person's."""
    person = sample_person(np.random.default_rng(5), stature_m=1.81)
    top, bottom = _landmarks(person)
    user = UserModel(round(person.stature_m, 2), span_m=bottom - top, span_sd_m=1e-7)
    held = held_calibration(user, top, bottom)
    contact = np.linspace(float(person.position_at(0.5)), float(person.position_at(15.0)), 2000)
    oracle = oracle_body(person)
    expected = region_codes(np.asarray(oracle.level_at(oracle_back_m(person, oracle, contact))))
    np.testing.assert_array_equal(held.regions(contact), expected)
    assert (expected != np.asarray(person.region_at(contact))).any()  # the oracle misses some


def test_a_landmark_held_20_mm_off_lowers_the_bound():
    """A top landmark held 20 mm low: the body model built from it puts the region
    edges off, and a trace rolled over the whole back loses frames near the edges."""
    top, bottom = _landmarks(PERSON)
    contact = np.linspace(float(PERSON.position_at(1.5)), float(PERSON.position_at(14.5)), 400)
    est = _estimates(np.asarray(PERSON.level_at(contact)), np.full(len(contact), 0.01))
    cols = SimpleNamespace(t=np.arange(float(len(contact))))
    user = UserModel(1.75)
    exact = score_spine(_fake(contact), cols, est, held=held_calibration(user, top, bottom))
    off = score_spine(_fake(contact), cols, est,
                      held=held_calibration(user, top + 0.020, bottom))
    assert exact.bound_frames == off.bound_frames == len(contact)
    assert exact.bound_correct == exact.oracle_correct == len(contact)  # the average person
    assert off.bound_correct < exact.bound_correct
    wrong = held_calibration(user, top + 0.020, bottom).regions(contact) != np.asarray(
        PERSON.region_at(contact))
    assert np.count_nonzero(wrong) == len(contact) - off.bound_correct
    missed = contact[wrong]
    edges = np.asarray(PERSON.position_at(np.array([1.0, 5.0, 9.0, 13.0])))
    assert len(missed) and np.abs(missed[:, None] - edges).min(axis=1).max() <= 0.020
    assert score_spine(_fake(contact), cols, est).bound_frames == 0  # no calibration


def test_the_held_landmarks_are_the_true_contact_over_the_hold():
    """The person held the roller 3 mm off T1 (the truth), while the roller's own
    position says anything: the bound takes the true contact over the second before
    each press."""
    t = np.arange(0.0, 10.0, 0.1)
    top, bottom = _landmarks(PERSON)
    contact = np.where(t < 5.0, top + 0.003, bottom)
    contact[t < 3.5] = top + 0.050  # before the hold: elsewhere
    cal = Calibration(Landmark(4.9, -0.2), Landmark(9.9, 0.1))
    held = held_landmarks_m(_fake(contact), SimpleNamespace(t=t), cal)
    np.testing.assert_allclose(held, (top + 0.003, bottom))
    contact[:] = np.nan  # the truth off the roller throughout
    assert held_landmarks_m(_fake(contact), SimpleNamespace(t=t), cal) is None


def _result(kind: str, spine: dict) -> SessionResult:
    nan = float("nan")
    return SessionResult(1, 0, kind, 1.75, 60.0, 6000, nan, nan, nan, nan, nan, nan, nan, 0,
                         50.0, spine=spine, new_user_spine=spine,
                         strokes={"tp": 0, "misses": 0, "false_alarms": 0, "exact": True,
                                  "amplitude_errors_mm": [], "latencies_ms": []},
                         warnings=_no_warnings(), new_user_warnings=_no_warnings())


def _no_warnings() -> dict:
    return {"excursions": 0, "warned": 0, "missed_depths_mm": [], "false_alarms": 0,
            "clear_rolling_s": 0.0, "device_latency_ms": [], "host_latency_ms": [],
            "delay_ms": []}


def test_summary_pools_coverage_and_keeps_the_worst_session():
    a = {"frames": 100, "correct": 90, "vertebra_errors_mm": [5.0], "covered": 95,
         "oracle_correct": 98, "lumbar_correct": 100}
    b = {"frames": 300, "correct": 270, "vertebra_errors_mm": [5.0], "covered": 210,
         "oracle_correct": 291, "lumbar_correct": 297}
    s = summarise([_result("calibrated", a), _result("profile", b)])
    assert s["uncertainty_coverage"] == (95 + 210) / 400
    assert s["uncertainty_coverage_min"] == 0.7
    assert s["region_accuracy_oracle"] == 0.98
    assert s["region_accuracy_oracle_uncalibrated"] == 0.97
    assert s["region_accuracy_bound"] is None  # no session had a calibration scored
    assert s["lumbar_accuracy_calibrated"] == 1.0
    assert s["lumbar_accuracy_uncalibrated"] == 0.99


def test_the_bound_pools_only_the_sessions_with_a_calibration():
    def spine(frames: int, bound_frames: int, bound_correct: int) -> dict:
        return {"frames": frames, "correct": 0, "vertebra_errors_mm": [], "covered": 0,
                "oracle_correct": 0, "lumbar_correct": 0, "bound_frames": bound_frames,
                "bound_correct": bound_correct}

    s = summarise([_result("calibrated", spine(100, 100, 96)),
                   _result("profile", spine(300, 0, 0)),  # its profile had no calibration
                   _result("profile", spine(200, 200, 190))])
    assert s["region_accuracy_bound"] == 0.96
    assert s["region_accuracy_bound_uncalibrated"] == 0.95


def test_the_summary_gives_the_vertebra_errors_95th_percentile_beside_the_median():
    """Issue 17's target is a median <= 10 mm and a 95th percentile <= 25 mm (calibrated):
    both are reported, each over its own kind of session."""
    def spine(errors: list[float]) -> dict:
        return {"frames": len(errors), "correct": 0, "vertebra_errors_mm": errors,
                "covered": 0, "oracle_correct": 0, "lumbar_correct": 0}

    s = summarise([_result("calibrated", spine([float(x) for x in range(101)])),
                   _result("profile", spine([1.0, 2.0, 3.0]))])
    assert s["vertebra_error_mm_median"] == 50.0
    assert s["vertebra_error_mm_p95"] == 95.0
    assert abs(s["vertebra_error_mm_p95_uncalibrated"] - 2.9) < 1e-9


def test_each_scenario_of_a_bench_gets_its_own_summary(monkeypatch):
    from firmware.sim.scenario import default_scenario
    from host.bench import suite as bench_suite

    @dataclasses.dataclass
    class Fake:
        seed: int
        session: int
        rolling: float  # which scenario ran it

    def fake_person(args):  # a person's two sessions
        scenario, seed, _ = args
        return [Fake(seed, k, scenario.session.duration_s) for k in (0, 1)]

    monkeypatch.setattr(bench_suite, "_run", fake_person)
    monkeypatch.setattr(bench_suite, "summarise", lambda rs: {
        "sessions": len(rs), "rolling": sorted({r.rolling for r in rs})})
    a = dataclasses.replace(default_scenario(), session=dataclasses.replace(
        default_scenario().session, duration_s=100.0))
    b = dataclasses.replace(a, session=dataclasses.replace(a.session, duration_s=200.0))
    out = bench_suite.run_bench([a, b, a], 2, jobs=1, names=["a", "b", "a"])
    assert list(out["by_scenario"]) == ["a", "b", "a#2"]
    assert list(out["by_scenario"].values()) == [
        {"sessions": 4, "rolling": [100.0]}, {"sessions": 4, "rolling": [200.0]},
        {"sessions": 4, "rolling": [100.0]}]
    assert out["summary"] == {"sessions": 12, "rolling": [100.0, 200.0]}
    assert "by_scenario" not in bench_suite.run_bench([a], 1, jobs=1)
    with pytest.raises(ValueError, match="2 names for 3 scenarios"):
        bench_suite.run_bench([a, b, a], 1, jobs=1, names=["a", "b"])
