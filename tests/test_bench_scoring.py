"""The bench's spine figures on made-up truths: coverage, the oracle's regions, lumbar."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from firmware.sim.body import Person, average_person, sample_person
from firmware.sim.routine import Phase
from host.analysis.model import Estimates, Region
from host.bench.scoring import oracle_back_m, oracle_body, score_spine
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
    assert s["lumbar_accuracy_calibrated"] == 1.0
    assert s["lumbar_accuracy_uncalibrated"] == 0.99
