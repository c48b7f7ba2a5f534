"""The guided calibration of a user with no calibration: the roller's buzzes per step
and per landmark, the live view's lines, the profile keeping it, and skipping it."""

import asyncio
import json
from types import SimpleNamespace

import pytest

from firmware.protocol import BuzzPattern, Frame, FrameFlag, quantise
from firmware.sim.rig import SimRoller
from firmware.sim.scenario import scenario_from_table
from host.analysis.calibration import UNCALIBRATED_NOTE, Landmark
from host.analysis.warnings import WarningPolicy
from host.daemon.guide import STEP_GAP_S, STEP_TEXT, CalibrationGuide, Step
from host.daemon.keeper import RollerKeeper, user_model
from host.daemon.live import render
from host.store import Store
from tests.test_daemon_sessions import ADDRESS, RecordingClient, settle

B = BuzzPattern


# -- the guide alone ---------------------------------------------------------------------

def _analysis(top=None, calibrated_at=None):
    return SimpleNamespace(calibration=SimpleNamespace(top=top), calibrated_at=calibrated_at)


def test_the_guide_says_each_step_and_confirms_or_refuses_each_press():
    guide = CalibrationGuide(active=True)
    assert guide.step is Step.TOP and guide.text == STEP_TEXT[Step.TOP]
    assert guide.start() == [(0.0, B.CALIBRATE_UP)]
    assert guide.follow(_analysis(), 0) == []  # no press: nothing to say
    assert guide.follow(_analysis(), 1) == [(0.0, B.LANDMARK_REFUSED),
                                            (STEP_GAP_S, B.CALIBRATE_UP)]
    top = Landmark(3.0, -0.15)
    assert guide.follow(_analysis(top), 1) == [(0.0, B.LANDMARK), (STEP_GAP_S, B.CALIBRATE_DOWN)]
    assert guide.step is Step.BOTTOM and "bottom of your ribs" in guide.text
    # A bottom that does not fit the span: refused, the top kept, roll down again.
    assert guide.follow(_analysis(top), 1) == [(0.0, B.LANDMARK_REFUSED),
                                               (STEP_GAP_S, B.CALIBRATE_DOWN)]
    # A press higher than the top takes a new top: confirmed, roll down.
    higher = Landmark(9.0, -0.17)
    assert guide.follow(_analysis(higher), 1)[0] == (0.0, B.LANDMARK)
    assert guide.follow(_analysis(None, 12.0), 1) == [(0.0, B.LANDMARK)]
    assert guide.step is Step.DONE and guide.text.startswith("calibrated")
    assert guide.follow(_analysis(None, 12.0), 1) == []  # presses after it: nothing


def test_an_inactive_guide_says_nothing():
    guide = CalibrationGuide(active=False)
    assert guide.start() == [] and guide.text == ""
    assert guide.follow(_analysis(Landmark(1.0, -0.1), 2.0), 1) == []


# -- the daemon --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def first_session() -> tuple[float, str | None, list[Frame]]:
    sc = scenario_from_table({"session": {"duration_s": 45.0},
                              "routine": {"calibration": True}})
    roller = SimRoller(sc, 5)
    frames: list[Frame] = []
    roller.add_sink(lambda f: frames.append(quantise(f, 8)))
    roller.run()
    roller.close()
    person = roller.world.person
    return round(person.stature_m, 2), person.sex, frames


def _keeper(store: Store, tmp_path, stature: float, sex: str | None) -> RollerKeeper:
    profile = store.create_profile("ann", stature, sex)
    keeper = RollerKeeper(store, None, ADDRESS, tmp_path, profile, idle_close_s=30.0,
                          say=lambda _: None)
    keeper.client = RecordingClient()
    return keeper


async def _roll(keeper: RollerKeeper, frames: list[Frame], seen: list[str]) -> None:
    for i in range(0, len(frames), 20):
        keeper._on_frames(frames[i:i + 20])
        if keeper.status.guide and keeper.status.guide not in seen:
            seen.append(keeper.status.guide)
        await asyncio.sleep(0)
    await settle(keeper)
    await asyncio.sleep(STEP_GAP_S + 0.2)  # the delayed step patterns


def test_a_first_session_is_guided_through_the_calibration_and_the_profile_keeps_it(
        tmp_path, first_session):
    stature, sex, frames = first_session

    async def run(store: Store) -> None:
        keeper = _keeper(store, tmp_path, stature, sex)
        seen: list[str] = []
        await _roll(keeper, frames, seen)
        assert seen == [STEP_TEXT[Step.TOP], STEP_TEXT[Step.BOTTOM], STEP_TEXT[Step.DONE]]
        guided = [b for b in keeper.client.buzzes if b >= B.CALIBRATE_UP]
        # (delivered faster than rolled: the step pattern delayed by STEP_GAP_S comes last)
        assert guided[0] is B.CALIBRATE_UP
        assert sorted(guided) == [B.CALIBRATE_UP, B.CALIBRATE_DOWN, B.LANDMARK, B.LANDMARK]
        assert not keeper.status.uncalibrated
        await keeper.close_session("test")
        profile = store.profile("ann")
        assert user_model(profile).calibrated
        # The next session: no guide, the usual policy.
        assert keeper._new_guide().step is Step.OFF

    with Store(tmp_path / "s.db") as store:
        asyncio.run(run(store))


def test_a_user_who_skips_is_not_guided_and_is_told_the_session_is_uncalibrated(
        tmp_path, first_session):
    stature, sex, frames = first_session
    press = next(i for i, f in enumerate(frames) if f.flags & FrameFlag.BUTTON)
    rolling = frames[:press]  # on the roller, no press
    assert sum(bool(f.flags & FrameFlag.IN_CONTACT) for f in rolling) > 300

    async def run(store: Store) -> None:
        keeper = _keeper(store, tmp_path, stature, sex)
        store.set_calibration_skipped("ann", True)
        assert store.calibration_skipped(store.profile("ann"))
        seen: list[str] = []
        await _roll(keeper, rolling, seen)
        assert seen == [] and not [b for b in keeper.client.buzzes if b >= B.CALIBRATE_UP]
        assert keeper.status.uncalibrated and keeper.status.guide == ""
        assert keeper.analyzer.warner.policy == WarningPolicy().uncalibrated()
        view = "\n".join(render(keeper.status, width=100))
        assert "UNCALIBRATED" in view and "calibrating (`smartroller calibrate`" in view
        assert UNCALIBRATED_NOTE.split()[-1] in view
        store.set_calibration_skipped("ann", False)
        assert keeper._new_guide().step is Step.TOP

    with Store(tmp_path / "s.db") as store:
        asyncio.run(run(store))


# -- smartroller calibrate --skip ----------------------------------------------------------

def test_calibrate_skip_turns_the_guide_off_and_calibrate_turns_it_on(tmp_path, capsys):
    from host.cli import main as cli

    def run(*argv):
        try:
            code = cli.main([*argv, "--data-dir", str(tmp_path / "d")])
        except SystemExit as exit_:
            code = exit_.code
        return (code, *capsys.readouterr())

    code, out, err = run("calibrate", "--skip")  # nothing there yet
    assert code == 2 and err.count("\n") == 1 and "no profile" in err and out == ""
    assert run("profile", "create", "ann", "--stature", "1.70")[0] == 0
    code, out, err = run("calibrate", "--skip")
    assert code == 0 and err == ""
    assert "calibration skipped for profile ann" in out and "fewer needless buzzes" in out
    with Store(tmp_path / "d" / "smartroller.db") as store:
        assert store.calibration_skipped(store.profile("ann"))
    code, out, _ = run("profile", "show", "--json")
    assert json.loads(out)["calibration_skipped"] is True
    code, out, err = run("calibrate", "--timeout", "1")  # no daemon publishing: exit 1
    assert code == 1 and "no daemon" in err
    with Store(tmp_path / "d" / "smartroller.db") as store:  # ... the guide is on again
        assert not store.calibration_skipped(store.profile("ann"))
        store.set_calibration_skipped("ann", True)
        store.delete_profile("ann")  # the choice goes with the profile
        again = store.create_profile("ann", 1.7)  # (SQLite gives it the same id)
        assert not store.calibration_skipped(again)
