"""A bench person's two sessions are on one roller, which keeps what it learned of its
parts between them (host/bench/suite.py ``run_person``, host/bench/closed_loop.py)."""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from firmware.calibration import Calibration, load_calibration, save_calibration
from firmware.sim.scenario import default_scenario
from host.bench import suite
from host.bench.closed_loop import run_session


def test_the_closed_loop_roller_starts_from_its_state_directory(tmp_path: Path):
    save_calibration(tmp_path, Calibration(gyro_scale=1.02, gyro_scale_weight=3.0))
    kept = run_session(default_scenario(), 1, 2.0, state_dir=tmp_path)
    assert kept.roller.firmware.start_calibration.gyro_scale == 1.02
    new = run_session(default_scenario(), 1, 2.0)
    assert new.roller.firmware.start_calibration.gyro_scale == 1.0


def test_the_second_session_gets_the_state_the_first_left_and_each_person_a_roller_of_their_own(
        monkeypatch):
    seen: list[tuple[int, int, Calibration]] = []

    def fake_session(scenario, seed, duration_s=None, *, session=0, user=None, held=None,
                     state_dir=None):
        assert state_dir is not None
        seen.append((seed, session, load_calibration(state_dir)))
        if session == 0:  # the firmware stores what it learned
            save_calibration(state_dir, Calibration(gyro_scale=1.0 + seed / 100,
                                                    gyro_scale_weight=1.0))
        result = SimpleNamespace(duration_s=10.0, firmware_cpu_ms_per_s=0.0,
                                 firmware_cpu_by_replay=True)
        return result, "learned", "held"

    monkeypatch.setattr(suite, "run_session", fake_session)
    monkeypatch.setattr(suite, "firmware_cpu", lambda *a: (1.0, True))
    suite.run_person(default_scenario(), 1)
    never = replace(default_scenario(), roller=replace(default_scenario().roller,
                                                       table_rolled=False))
    suite.run_person(never, 2)
    assert [(seed, session) for seed, session, _ in seen] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    first1, second1, first2, second2 = (cal for _, _, cal in seen)
    assert first1.gyro_scale_weight > 0.0 and first1.gyro_scale != 1.0  # as built: rolled
    assert not first2.learned  # never table-rolled: a new roller, nothing learned
    assert second1.gyro_scale == 1.01 and second2.gyro_scale == 1.02
