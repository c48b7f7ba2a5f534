"""The session store: schema and migrations, WAL, transactions, crashes, frames in
(boot, seq) order each once, stream positions, analysis, profiles and devices."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from firmware.protocol import Frame, FrameFlag
from host.analysis.model import Event, EventKind, Region, SpineEstimate
from host.store import (
    CLOSED,
    RECORDING,
    SCHEMA_VERSION,
    Estimates,
    Store,
    StoreError,
    frame_dtype,
    migrate,
    open_store,
)
from host.store import database as store_mod
from host.stream import ClockSample, StreamPosition
from tests.sessions import DEVICE, START_UTC, clock_for, record_session, sim_frames


def frame(seq, boot=7, t=None, zones=4):
    t = seq * 0.01 if t is None else t
    return Frame(seq, t, 0.001 * seq, 0.02, 0.1 * seq, tuple(float(z) for z in range(zones)),
                 6.0, FrameFlag.IN_CONTACT, boot)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s.db") as s:
        yield s


def test_new_store_has_the_schema_and_uses_wal(tmp_path, store):
    assert store.schema_version == SCHEMA_VERSION
    assert store.journal_mode == "wal"
    conn = sqlite3.connect(tmp_path / "s.db")
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
    assert versions == [m.version for m in store_mod.MIGRATIONS]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "frame_blocks", "frame_keys", "strokes", "events", "devices",
            "profiles", "stream_positions"} <= tables


def test_old_database_is_upgraded_in_place_keeping_its_data(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, up_to=1) == [1]
    conn.execute("INSERT INTO sessions (device, state, started_utc, zone_count, frame_count) "
                 "VALUES ('AA:BB:CC:DD:EE:FF', 'recording', 100.0, 4, 3)")
    rec = np.zeros(3, dtype=frame_dtype(4))
    rec["boot"], rec["seq"], rec["t"], rec["utc"] = 9, [2, 0, 1], [0.02, 0.0, 0.01], np.nan
    conn.execute("INSERT INTO frame_blocks (session_id, count, data) VALUES (1, 3, ?)",
                 (rec.tobytes(),))
    conn.executemany("INSERT INTO frame_keys VALUES (1, 9, ?)", [(0,), (1,), (2,)])
    conn.close()
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert list(s.read_frames(1).seq) == [0, 1, 2]
        s.add_event(1, Event(EventKind.CALIBRATION, 0.0, None, "top of the shoulders"))
        assert s.summary(1).session.frame_count == 3
        assert len(s.events(1)) == 1


def test_database_from_a_newer_version_is_refused(tmp_path, store):
    store._conn.execute("INSERT INTO schema_version VALUES (?, 'future', 0)",
                        (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer smartroller") as error:
        Store(tmp_path / "s.db")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("content", [b"not a database at all, just text" * 40,
                                     b"SQLite format 3\x00" + b"\xff" * 200])
def test_corrupt_file_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "bad.db"
    path.write_bytes(content)
    with pytest.raises(StoreError) as error:
        Store(path)
    assert "\n" not in str(error.value)


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    with pytest.raises(StoreError, match="not a smartroller database"):
        Store(path)


def test_frames_read_back_in_boot_seq_order_each_once(store):
    s = store.open_session(DEVICE, 0.0)
    live = [frame(q) for q in range(50, 60)] + [frame(q, boot=3) for q in range(5)]
    backfill = [frame(q) for q in range(0, 55)]  # overlaps the live run
    random.Random(1).shuffle(backfill)
    assert store.add_frames(s.id, live) == 15
    first = store.add_frames(s.id, backfill[:30])
    second = store.add_frames(s.id, backfill[30:] + live[:3] + backfill[:2])
    assert first + second == 50  # 50..54 and live[:3] were stored already
    got = store.read_frames(s.id)
    keys = list(zip(got.boot.tolist(), got.seq.tolist(), strict=True))
    assert keys == [(3, q) for q in range(5)] + [(7, q) for q in range(60)]
    assert store.session(s.id).frame_count == 65
    f = got.frame(10)
    assert (f.boot, f.seq, f.position, f.zone_loads) == (7, 5, pytest.approx(0.005),
                                                         (0.0, 1.0, 2.0, 3.0))


def test_a_failing_batch_leaves_nothing_behind(store, monkeypatch):
    s = store.open_session(DEVICE, 0.0)
    store.add_frames(s.id, [frame(0), frame(1)], position=StreamPosition(7, 1))

    def boom(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "_insert_estimates", staticmethod(boom))
    est = SpineEstimate(8.0, Region.MID_THORACIC, 0.0, 0.2, 0.01)
    with pytest.raises(RuntimeError):
        store.add_frames(s.id, [frame(2), frame(3)], estimates=[est, est],
                         position=StreamPosition(7, 3))
    assert list(store.read_frames(s.id).seq) == [0, 1]
    assert store.session(s.id).frame_count == 2
    assert store.stream_position(DEVICE) == (StreamPosition(7, 1), [])
    monkeypatch.undo()
    assert store.add_frames(s.id, [frame(2), frame(3)]) == 2  # the keys were rolled back too


def test_mixed_zone_counts_are_refused(store):
    s = store.open_session(DEVICE, 0.0)
    store.add_frames(s.id, [frame(0)])
    with pytest.raises(StoreError, match="zones"):
        store.add_frames(s.id, [frame(1, zones=8)])


def test_stream_position_and_the_seqs_stored_beyond_it(store):
    s = store.open_session(DEVICE, 0.0)
    assert store.stream_position(DEVICE) == (None, [])
    store.add_frames(s.id, [frame(q) for q in range(10)], position=StreamPosition(7, 9))
    store.add_frames(s.id, [frame(q) for q in (14, 15, 20)], position=StreamPosition(7, 9))
    later = store.open_session(DEVICE, 10.0)  # a new session of the same device
    store.add_frames(later.id, [frame(21)], position=StreamPosition(7, 9))
    assert store.stream_position(DEVICE.lower()) == (StreamPosition(7, 9), [14, 15, 20, 21])
    store.add_frames(later.id, [frame(0, boot=8)], position=StreamPosition(8, 0))
    assert store.stream_position(DEVICE) == (StreamPosition(8, 0), [])


def test_utc_from_the_clock_and_filled_in_later(store):
    s = store.open_session(DEVICE, START_UTC)
    clock = clock_for(7)
    store.add_frames(s.id, [frame(0), frame(1)], clock=clock)
    store.add_frames(s.id, [frame(0, boot=8, t=5.0)])  # boot 8 not mapped yet
    got = store.read_frames(s.id)
    assert got.utc[got.boot == 7].tolist() == [START_UTC, START_UTC + 0.01]
    assert np.isnan(got.utc[got.boot == 8]).all()
    store.set_clock(DEVICE, ClockSample(8, 1.0, START_UTC + 100.0, 0.01))
    got = store.read_frames(s.id)
    assert got.utc[got.boot == 8].tolist() == [START_UTC + 104.0]
    store.close_session(s.id)  # written into the merged blocks
    store._conn.execute("DELETE FROM clocks")
    assert store.read_frames(s.id).utc[2] == START_UTC + 104.0


def test_small_blocks_are_merged_and_read_the_same(store, monkeypatch):
    monkeypatch.setattr(store_mod, "MERGE_AT", 8)
    monkeypatch.setattr(store_mod, "BIG_BLOCK", 20)
    s = store.open_session(DEVICE, 0.0)
    seqs = list(range(100))
    random.Random(4).shuffle(seqs)
    for i in range(0, 100, 3):
        store.add_frames(s.id, [frame(q) for q in seqs[i:i + 3]])
    blocks = store._conn.execute("SELECT count(*) FROM frame_blocks").fetchone()[0]
    assert blocks < 34
    assert store.read_frames(s.id).seq.tolist() == list(range(100))
    store.close_session(s.id)
    counts = [r[0] for r in store._conn.execute("SELECT count FROM frame_blocks")]
    assert sorted(counts) == [20] * 5


def test_estimates_live_then_replaced_as_a_whole(store):
    sid = record_session(store, sim_frames())
    data = store.load(sid)
    assert data.estimates.known.all()
    first = data.frames.frame(0)
    assert data.estimates.level[0] == pytest.approx(8.0 + first.position / 0.024, abs=1e-4)
    n = len(data.frames)
    new = Estimates.unknown(n)
    new.level[:], new.region[:] = 2.0, int(Region.UPPER_THORACIC)
    new.p_below_ribs[:], new.back_m[:], new.sd_m[:] = 0.0, 0.05, 0.01
    store.replace_analysis(sid, frames=data.frames, estimates=new,
                           strokes=[s for _, s in data.strokes[:2]],
                           events=[Event(EventKind.APPROACH, 1.0, 2.0, "near the ribs")])
    again = store.load(sid)
    assert (again.estimates.region == int(Region.UPPER_THORACIC)).all()
    assert len(again.strokes) == 2 and len(again.dwells) == 0
    assert [e.kind for _, _, e in again.events] == [EventKind.APPROACH]
    with pytest.raises(StoreError, match="estimates"):
        store.replace_analysis(sid, frames=data.frames, estimates=Estimates.unknown(3))


def test_newest_live_estimate_of_a_frame_wins(store):
    s = store.open_session(DEVICE, 0.0)
    f = [frame(0), frame(1)]
    a = SpineEstimate(8.0, Region.MID_THORACIC, 0.1, 0.2, 0.01)
    b = SpineEstimate(13.5, Region.LUMBAR, 0.9, 0.4, 0.01)
    store.add_frames(s.id, f, estimates=[a, None])
    store.add_estimates(s.id, [f[0]], [b])
    est = store.read_estimates(s.id)
    assert est.level[0] == pytest.approx(13.5) and est.region[0] == int(Region.LUMBAR)
    assert np.isnan(est.level[1]) and est.region[1] == -1 and not est.known[1]
    store.close_session(s.id)  # merges the estimate blocks, the newest kept
    assert store._conn.execute("SELECT count(*) FROM estimate_blocks").fetchone()[0] == 1
    merged = store.read_estimates(s.id)
    assert merged.level[0] == pytest.approx(13.5) and not merged.known[1]
    store.add_estimates(s.id, [f[0]], [a])  # newer than the merged block
    assert store.read_estimates(s.id).level[0] == pytest.approx(8.0)


def test_open_events_end_later_and_counts_in_listings(store):
    sid = record_session(store, sim_frames(), close=False)
    eid = store.add_event(sid, Event(EventKind.LUMBAR_WARNING, 3.0, None, "below the ribs"))
    store.end_event(eid, 3.8, 0.012)
    _, _, ev = next(e for e in store.events(sid) if e[0] == eid)
    assert (ev.end_t, ev.value) == (3.8, 0.012)
    summary = store.summary(sid)
    assert summary.stroke_count == len(store.strokes(sid)) > 3
    assert summary.warning_count == sum(1 for _, _, e in store.events(sid)
                                        if e.kind is EventKind.LUMBAR_WARNING)
    assert summary.session.state == RECORDING
    with pytest.raises(StoreError):
        store.end_event(999, 1.0)


def test_recover_closes_idle_sessions_and_keeps_recent_ones(store):
    old = store.open_session(DEVICE, 1000.0)
    store.add_frames(old.id, [frame(0), frame(1)], clock=clock_for(7, 1000.0))
    recent = store.open_session("AA:BB:CC:DD:EE:FF", 5000.0)
    resumable, closed = store.recover(idle_s=600.0, now_utc=5100.0)
    assert [s.id for s in resumable] == [recent.id]
    assert [s.id for s in closed] == [old.id]
    assert closed[0].state == CLOSED and closed[0].ended_utc == pytest.approx(1000.01)
    assert store.recording_session("aa:bb:cc:dd:ee:ff").id == recent.id


CHILD = textwrap.dedent("""
    import sys
    from firmware.protocol import Frame
    from host.store import Store
    from host.stream import StreamPosition
    store = Store(sys.argv[1])
    session = store.open_session("F2:83:5D:6F:F8:0C", 1000.0)
    seq = 0
    while True:
        batch = [Frame(seq + k, (seq + k) * 0.01, 0.0, 0.0, 0.0, (1.0,) * 8, 8.0, 0, 5)
                 for k in range(4)]
        store.add_frames(session.id, batch, position=StreamPosition(5, seq + 3))
        seq += 4
        print(seq, flush=True)
""")


@pytest.mark.parametrize("kill_after", [5, 40, 133])
def test_sigkill_mid_write_keeps_every_committed_frame(tmp_path, kill_after):
    path = tmp_path / "crash.db"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        reported = 0
        for _ in range(kill_after):
            line = child.stdout.readline()
            assert line, "the writer died"
            reported = int(line)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(10)
        child.stdout.close()
    with Store(path) as s:
        session = s.sessions()[0]
        assert session.state == RECORDING
        frames = s.read_frames(session.id)
        n = len(frames)
        assert n >= reported and n % 4 == 0  # whole batches only
        assert frames.seq.tolist() == list(range(n)) and session.frame_count == n
        keys = s._conn.execute("SELECT count(*) FROM frame_keys").fetchone()[0]
        assert keys == n
        assert s.stream_position(DEVICE) == (StreamPosition(5, n - 1), [])
        resumable, _ = s.recover(idle_s=1e12)
        assert [r.id for r in resumable] == [session.id]  # the daemon may go on with it
        s.add_frames(session.id, [Frame(n, n * 0.01, 0, 0, 0, (1.0,) * 8, 8.0, 0, 5)])
        _, closed = s.recover(idle_s=0.0)
        assert closed[0].state == CLOSED and s.read_frames(session.id).seq[-1] == n


def test_profiles(store):
    assert store.active_profile() is None
    ann = store.create_profile("ann", 1.68, "female")
    assert store.active_profile() == ann  # the first one is active
    bob = store.create_profile("bob", 1.85)
    assert store.active_profile().name == "ann"
    store.set_active_profile("bob")
    assert store.active_profile().id == bob.id
    updated = store.update_profile("bob", stature_m=1.86, sex="male",
                                   body={"calibration": {"top_m": -0.1}})
    assert (updated.stature_m, updated.sex, updated.body["calibration"]["top_m"]) == (
        1.86, "male", -0.1)
    assert [p.name for p in store.profiles()] == ["ann", "bob"]
    assert store.open_session(DEVICE, 0.0).profile_id == bob.id
    for bad in [dict(stature_m=0.4), dict(stature_m=float("nan")), dict(sex="x")]:
        with pytest.raises(StoreError):
            store.update_profile("ann", **bad)
    with pytest.raises(StoreError, match="exists"):
        store.create_profile("ann", 1.7)
    with pytest.raises(StoreError, match="no profile"):
        store.set_active_profile("carl")


def test_devices_and_forget(store):
    store.note_device(DEVICE.lower(), name="smartroller-f80c", seen_utc=100.0)
    store.note_device(DEVICE, seen_utc=50.0, bonded=True, key_store="/k.json")
    d = store.device(DEVICE)
    assert (d.name, d.first_seen_utc, d.last_seen_utc, d.bonded, d.key_store) == (
        "smartroller-f80c", 50.0, 100.0, True, "/k.json")
    store.note_device(DEVICE, seen_utc=200.0)
    assert store.device(DEVICE).bonded  # unchanged when not given
    sid = record_session(store, sim_frames(), close=True)
    assert store.forget_device(DEVICE)
    assert store.device(DEVICE) is None and store.stream_position(DEVICE) == (None, [])
    assert store.session(sid).frame_count > 0  # the user's sessions stay
    assert not store.forget_device(DEVICE)


def test_open_store_in_a_data_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARTROLLER_DATA_DIR", str(tmp_path / "env"))
    with open_store() as s:
        assert s.path == tmp_path / "env" / "smartroller.db"
    with open_store(tmp_path / "flag") as s:
        assert s.path.parent == tmp_path / "flag"
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        open_store(tmp_path / "file")
    with pytest.raises(StoreError, match="nothing recorded"):
        open_store(tmp_path / "none", create=False)


def test_reopen_reads_the_file_now_at_its_path_and_refuses_one_gone(tmp_path):
    """Issue 18: a disk the kernel made read-only comes back only as a new mount; the
    old connection still reads and writes the old one. ``reopen`` opens the path again
    (here a directory moved aside and another put in its place stand for the mounts)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    with Store(disk / "smartroller.db") as store:
        store.note_device(DEVICE, name="old")
        disk.rename(tmp_path / "old mount")
        disk.mkdir()
        with Store(disk / "smartroller.db") as other:
            other.note_device(DEVICE, name="new")
        assert store.devices()[0].name == "old"  # the old file, still open
        store.reopen()
        assert store.devices()[0].name == "new"
        store.note_device(DEVICE, name="written")
        for file in disk.iterdir():
            file.unlink()
        with pytest.raises(StoreError, match="is gone"):
            store.reopen()  # (no new, empty store made in its place)
        assert store.devices()[0].name == "written"  # the old connection is kept


def test_a_schema_4_store_marks_the_sessions_whose_start_is_not_known(tmp_path):
    """Schema 5: a session stored before it, whose frames have no UTC (a boot no host
    saw), was dated when it reached the host; it is now marked approximate, and the
    next close of the device's sessions bounds it (``host.store.dating``)."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, up_to=4) == [1, 2, 3, 4]
    conn.execute("INSERT INTO sessions (device, state, started_utc, ended_utc, last_utc, "
                 "zone_count, frame_count, last_boot) VALUES "
                 "(?, 'closed', 900.0, 960.0, NULL, 4, 3, 9), "
                 "(?, 'closed', 500.0, 560.0, 560.0, 4, 3, 10)", (DEVICE, DEVICE))
    conn.close()
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION == 5
        unmapped, mapped = s.session(1), s.session(2)
        assert not unmapped.start_known and mapped.start_known
        assert unmapped.start_text().startswith("<= ")


def test_the_sessions_dated_by_bounds_are_read_once_not_at_every_close(tmp_path):
    """Every close bounds the device's sessions whose start is not known, from their
    first and last frames: each such session's frames are decoded once (again only
    when frames are added), not at every close of every later session."""
    from tests.test_daemon_sessions import C, frames

    with Store(tmp_path / "s.db") as store:
        decoded: list[int] = []
        read = store._frame_records

        def counting(session):
            decoded.append(session.id)
            return read(session)

        store._frame_records = counting
        counts, first = [], None
        for boot in (0x10, 0x11, 0x12, 0x13):
            k = boot - 0x10
            s = store.open_session(DEVICE, 1000.0 + k, start_known=False)
            store.add_frames(s.id, frames(boot, 100 * k, 0.0, 50, C))
            store.close_session(s.id)
            first = first or s.id
            counts.append(decoded.count(first))
        assert counts == [counts[0]] * 4, decoded  # later closes read it no more
        store.add_frames(first, frames(0x10, 50, 0.5, 10, C))  # late backfill: read again
        s = store.open_session(DEVICE, 2000.0, start_known=False)
        store.add_frames(s.id, frames(0x14, 500, 0.0, 50, C))
        store.close_session(s.id)
        assert decoded.count(first) == counts[0] + 1, decoded
        assert not store.session(first).start_known
