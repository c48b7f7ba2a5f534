"""The daemon's live status: whether the roller is buzzing."""

import numpy as np

from firmware.protocol import Frame, FrameFlag
from host.analysis.session import SessionAnalyzer
from host.daemon.keeper import RollerKeeper, user_model
from host.store import Store

C = FrameFlag.IN_CONTACT


def frame(seq: int, flags: FrameFlag) -> Frame:
    return Frame(seq, seq * 0.01, 0.25, 0.0, 0.0, (50.0,) * 8, 400.0, flags, 1)


def test_buzzing_is_the_analysis_warning_or_the_rollers_fence_and_clears_with_both(tmp_path):
    with Store(tmp_path / "s.db") as store:
        profile = store.create_profile("ann", 1.70)
        keeper = RollerKeeper(store, None, "D9:B5:44:3F:29:4D", tmp_path, profile,
                              say=lambda _: None)
        keeper._update_status(frame(1, C | FrameFlag.BEYOND_FENCE), None)
        assert keeper.status.warning  # the roller's own fence, no analysis yet
        keeper.analyzer = SessionAnalyzer(user_model(profile))
        keeper._update_status(frame(2, C), None)
        assert not keeper.status.warning  # back above its fence, no warning on the host

        def p_below(p: float) -> None:  # the analysis's warner sees P(below the ribs)
            one = np.array([p])
            keeper.analyzer.warner.feed_columns(np.array([0.03]), one, one, np.array([True]))

        p_below(0.9)
        keeper._update_status(frame(3, C), None)
        assert keeper.status.warning  # the host's warning holds it on
        p_below(0.0)
        keeper._update_status(frame(4, C), None)
        assert not keeper.status.warning


def test_what_waits_for_acknowledgement_is_bounded_per_roller(tmp_path):
    # A buggy or hostile roller announcing a new boot with every frame: the daemon keeps
    # what it owes acknowledgements for no more boots than the client follows.
    from host.stream import MAX_BOOTS

    with Store(tmp_path / "s.db") as store:
        profile = store.create_profile("ann", 1.70)
        keeper = RollerKeeper(store, None, "D9:B5:44:3F:29:4D", tmp_path, profile,
                              say=lambda _: None)
        keeper._handled([Frame(0, 0.0, 0.0, 0.0, 0.0, (0.0,) * 8, 0.0, C, boot)
                         for boot in range(1, 20_001)])
        assert len(keeper._pending) == MAX_BOOTS
        assert max(keeper._pending) == 20_000  # the newest boots are the ones kept


def test_the_status_carries_the_frames_utc_and_is_published_at_20_hz(tmp_path, monkeypatch):
    import host.daemon.keeper as keeper_module
    from host.daemon.live import read_statuses
    from host.stream import ClockMap, ClockSample

    assert keeper_module.PUBLISH_EVERY_S <= 0.05  # the dashboard's live page: >= 10 Hz
    with Store(tmp_path / "s.db") as store:
        profile = store.create_profile("ann", 1.70)
        keeper = RollerKeeper(store, None, "D9:B5:44:3F:29:4D", tmp_path, profile,
                              say=lambda _: None)
        keeper.client.clock_map = ClockMap([ClockSample(1, 0.0, 1_780_000_000.0, 0.02)])
        keeper._received_utc = 1_780_000_000.2
        clock = iter([100.0, 100.03, 100.06])  # the wall clock at each update, s
        monkeypatch.setattr(keeper_module.time, "time", lambda: next(clock))
        published = []
        for seq in (5, 8, 11):
            keeper._update_status(frame(seq, C), None)
            assert keeper.status_writer.flush()
            published.append(read_statuses(tmp_path, now=100.1)[0])
    assert [s.t for s in published] == [0.05, 0.05, 0.11]  # 30 ms after: not yet; 60: yes
    assert [s.utc for s in published] == [100.0, 100.0, 100.06]
    assert published[-1].frame_utc == 1_780_000_000.11  # the roller's time, mapped
    assert published[-1].received_utc == 1_780_000_000.2


def test_a_slow_disk_delays_the_status_file_not_the_frames(tmp_path, monkeypatch):
    """Every status write stalls 0.3 s (a slow or busy disk): the daemon's per-batch
    status update (in the event loop, with the frames, acks and cues) does not wait for
    it; the statuses that came meanwhile are not queued, and the file ends holding the
    newest one. A write that fails is logged, and the next one is written."""
    import itertools
    import time

    import host.daemon.keeper as keeper_module
    import host.daemon.live as live

    write, writes = live._publish_text, []

    def slow(data_dir, address, text):
        time.sleep(0.3)
        writes.append(text)
        write(data_dir, address, text)

    monkeypatch.setattr(live, "_publish_text", slow)
    with Store(tmp_path / "s.db") as store:
        profile = store.create_profile("ann", 1.70)
        keeper = RollerKeeper(store, None, "D9:B5:44:3F:29:4D", tmp_path, profile,
                              say=lambda _: None)
        wall = itertools.count(100.0, 0.06)  # the wall clock at each update, s: all published
        monkeypatch.setattr(keeper_module.time, "time", lambda: next(wall))
        took = []
        for seq in range(1, 11):
            t0 = time.perf_counter()
            keeper._update_status(frame(seq, C), None)
            took.append(time.perf_counter() - t0)
        assert max(took) < 0.1, took  # each was 0.3 s when the loop wrote the file
        assert keeper.status_writer.flush(5.0)
        assert len(writes) <= 3  # the first, then the newest of those that waited
        assert live.read_statuses(tmp_path, now=101.0)[0].t == 0.1  # the 10th frame's

        monkeypatch.setattr(live, "_publish_text", write)
        (tmp_path / "run").write_text("a file: the runtime directory takes no status either")
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
        errors = []
        keeper.status_writer.on_error = errors.append
        (tmp_path / "live").rename(tmp_path / "elsewhere")
        (tmp_path / "live").write_text("a file where the folder was")
        keeper._update_status(frame(11, C), None)
        assert keeper.status_writer.flush(5.0) and len(errors) == 1
        (tmp_path / "live").unlink()
        keeper._update_status(frame(12, C), None)
        assert keeper.status_writer.flush(5.0) and len(errors) == 1
        assert live.read_statuses(tmp_path, now=101.0)[0].t == 0.12
