"""The user's commands end to end on a store filled from the simulator, and bad input to
every one of them: exit status 2 and one line, never a traceback."""

import asyncio
import io
import json
import os
import sqlite3
import stat

import pytest

from host.cli import main as cli
from host.cli.progress import Progress
from host.store import SCHEMA_VERSION, Store
from tests.sessions import DEVICE, record_session, sim_frames

OTHER = "C4:11:22:33:44:55"


def run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    with Store(d / "smartroller.db") as store:
        store.create_profile("ann", 1.68, "female")
        record_session(store)
        record_session(store, close=False, utc0=1_780_000_100.0)
    return d


def test_sessions_show_export_report_flow(data_dir, tmp_path, capsys):
    dd = ["--data-dir", str(data_dir)]
    code, out, err = run(["sessions", *dd], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["id", "device", "start"]
    assert lines[1].split()[0] == "1" and lines[1].endswith("closed")
    assert "recording (interrupted" in lines[2]  # no daemon runs: it stopped with it open
    code, out, _ = run(["sessions", "--json", *dd], capsys)
    listing = json.loads(out)
    assert [s["id"] for s in listing] == [1, 2]
    assert set(listing[0]) >= {"device", "start_utc", "end_utc", "duration_s", "frames",
                               "strokes", "warnings", "state"}
    assert listing[0]["frames"] == len(sim_frames()) and listing[0]["strokes"] > 3
    code, out, _ = run(["show", "latest", "--json", *dd], capsys)
    shown = json.loads(out)
    assert code == 0 and shown["id"] == 2 and shown["profile"] == "ann"
    assert shown["time_per_level_s"]
    code, out, err = run(["export", "latest", "--out", str(tmp_path / "csv"), *dd], capsys)
    assert code == 0 and err == ""  # no progress bar when stderr is not a terminal
    assert [p.rsplit("/", 1)[1] for p in out.split()] == ["samples.csv", "strokes.csv",
                                                          "dwells.csv", "events.csv"]
    assert (tmp_path / "csv" / "samples.csv").read_text().count("\n") == len(sim_frames()) + 1
    code, out, _ = run(["report", "1", "--out", str(tmp_path / "r.html"), *dd], capsys)
    assert code == 0 and out.strip() == str(tmp_path / "r.html")
    assert "smartroller session 1" in (tmp_path / "r.html").read_text()


def test_data_dir_from_the_environment(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("SMARTROLLER_DATA_DIR", str(data_dir))
    code, out, _ = run(["sessions", "--json"], capsys)
    assert code == 0 and len(json.loads(out)) == 2


def test_fresh_data_directory_lists_nothing(tmp_path, capsys):
    dd = ["--data-dir", str(tmp_path / "new")]
    assert run(["sessions", *dd], capsys)[:2] == (0, "no sessions yet\n")
    assert run(["sessions", "--json", *dd], capsys)[:2] == (0, "[]\n")
    assert run(["devices", "--json", *dd], capsys)[:2] == (0, "[]\n")
    assert run(["profile", "list", *dd], capsys)[:2] == (0, "no profiles yet\n")
    assert not (tmp_path / "new").exists()  # listing creates nothing


def test_profile_commands(tmp_path, capsys):
    dd = ["--data-dir", str(tmp_path / "d")]
    code, out, _ = run(["profile", "create", "ann", "--stature", "168cm", "--sex", "female",
                        *dd], capsys)
    assert code == 0 and "stature_m: 1.68" in out and "active: True" in out
    assert run(["profile", "create", "bob", "--stature", "1.85", *dd], capsys)[0] == 0
    code, out, _ = run(["profile", "list", *dd], capsys)
    assert out.splitlines()[0].startswith("* ann") and out.splitlines()[1].startswith("  bob")
    assert run(["profile", "use", "bob", *dd], capsys)[0] == 0
    code, out, _ = run(["profile", "show", "--json", *dd], capsys)
    info = json.loads(out)
    assert info["name"] == "bob" and info["active"] and not info["calibrated"]
    code, out, _ = run(["profile", "update", "bob", "--sex", "male", "--stature", "1.86",
                        *dd], capsys)
    assert code == 0 and "sex: male" in out and "stature_m: 1.86" in out
    code, out, _ = run(["profile", *dd], capsys)
    assert "name: bob" in out and "calibration (made by 'smartroller calibrate'): -" in out
    with Store(tmp_path / "d" / "smartroller.db") as store:  # what calibrate leaves
        store.update_profile("bob", body={"schema": 1, "calibrations": 2, "span_m": 0.3012})
    code, out, _ = run(["profile", "show", "bob", "--json", *dd], capsys)
    info = json.loads(out)
    assert info["calibrated"] and info["calibration"] == (
        "2 calibrated session(s), thoracic span 301 mm")


def test_devices_and_forget_with_a_bumble_key_store(data_dir, tmp_path, capsys):
    from bumble.keys import JsonKeyStore, PairingKeys

    keys = tmp_path / "ble-keys.json"

    async def bond(address):
        store = JsonKeyStore("C0:98:E5:49:00:01", str(keys))
        await store.update(address, PairingKeys(
            address_type=1, ltk=PairingKeys.Key(bytes(range(16)), authenticated=True)))

    asyncio.run(bond(DEVICE))
    asyncio.run(bond(OTHER))
    dd = ["--data-dir", str(data_dir)]
    code, out, _ = run(["devices", "--json", *dd], capsys)
    assert [d["address"] for d in json.loads(out)] == [DEVICE]
    code, out, err = run(["forget", DEVICE.lower(), "--keys", str(keys), *dd], capsys)
    assert code == 0, err
    assert out.strip() == f"{DEVICE}: removed from the store, bond deleted from {keys}"
    stored = json.loads(keys.read_text())
    assert list(stored["C0:98:E5:49:00:01"]) == [OTHER]  # the other roller's bond stays
    assert run(["devices", "--json", *dd], capsys)[1] == "[]\n"
    assert len(json.loads(run(["sessions", "--json", *dd], capsys)[1])) == 2  # data stays
    code, _, err = run(["forget", DEVICE, "--keys", str(keys), *dd], capsys)
    assert code == 2 and "unknown roller" in err and err.count("\n") == 1


def test_forget_on_the_native_backend_without_a_system_stack(data_dir, capsys,
                                                             monkeypatch, tmp_path):
    import host.ble.bumble_adapter as adapter

    monkeypatch.setattr(adapter, "default_key_store_path", lambda: tmp_path / "none.json")

    async def no_bluez(address, adapter=None, timeout_s=15.0):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr("host.ble.bonds.unpair_native", no_bluez)
    code, out, err = run(["forget", DEVICE, "--data-dir", str(data_dir)], capsys)
    assert code == 1 and out.strip() == f"{DEVICE}: removed from the store"
    assert "did not remove a bond" in err and err.count("\n") == 1


def test_progress_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    quiet, tty = io.StringIO(), Tty()
    for stream in (quiet, tty):
        bar = Progress("export", stream, width=10, min_interval_s=0.0)
        bar(0.5)
        bar(1.0)
        bar.done()
    assert quiet.getvalue() == ""
    assert "export [#####.....]  50 %" in tty.getvalue()
    assert "[##########] 100 %" in tty.getvalue()


@pytest.fixture
def bad_files(tmp_path, data_dir):
    afile = tmp_path / "a-file"
    afile.write_text("not a directory")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "smartroller.db").write_bytes(b"garbage" * 100)
    newer = tmp_path / "newer"
    newer.mkdir()
    conn = sqlite3.connect(newer / "smartroller.db")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description "
                 "TEXT, applied_utc REAL)")
    conn.execute("INSERT INTO schema_version VALUES (?, 'x', 0)", (SCHEMA_VERSION + 5,))
    conn.commit()
    notjson = tmp_path / "keys.json"
    notjson.write_text("{not json")
    return {"FILE": str(afile), "CORRUPT": str(corrupt), "NEWER": str(newer),
            "DATA": str(data_dir), "NOTJSON": str(notjson), "TMP": str(tmp_path)}


BAD = [
    (["sessions", "--data-dir", "FILE"], "is a file"),
    (["sessions", "--data-dir", "CORRUPT"], "not a usable smartroller database"),
    (["sessions", "--data-dir", "NEWER"], "newer smartroller"),
    (["devices", "--data-dir", "CORRUPT"], "not a usable"),
    (["show", "99", "--data-dir", "DATA"], "no session 99"),
    (["show", "x", "--data-dir", "DATA"], "expected a session id"),
    (["show", "latest", "--data-dir", "TMP/empty"], "no session recorded yet"),
    (["export", "1", "--out", "FILE", "--data-dir", "DATA"], "is a file"),
    (["export", "7", "--out", "TMP/o", "--data-dir", "DATA"], "no session 7"),
    (["export", "1", "--data-dir", "DATA"], "required: --out"),
    (["export", "0", "--out", "TMP/o", "--data-dir", "DATA"], "expected a session id"),
    (["report", "1", "--out", "TMP", "--data-dir", "DATA"], "is a directory"),
    (["report", "1", "--out", "TMP/no/such/r.html", "--data-dir", "DATA"], "no directory"),
    (["report", "5", "--data-dir", "NEWER"], "newer smartroller"),
    (["profile", "create", "z", "--stature", "0.5", "--data-dir", "DATA"], "out of range"),
    (["profile", "create", "z", "--stature", "tall", "--data-dir", "DATA"], "not a stature"),
    (["profile", "create", "z", "--stature", "1.7", "--sex", "x", "--data-dir", "DATA"],
     "invalid choice"),
    (["profile", "create", "ann", "--stature", "1.7", "--data-dir", "DATA"], "exists"),
    (["profile", "use", "nobody", "--data-dir", "DATA"], "no profile named"),
    (["profile", "update", "ann", "--data-dir", "DATA"], "nothing to update"),
    (["profile", "show", "nobody", "--data-dir", "DATA"], "no profile named"),
    (["profile", "show", "--data-dir", "TMP/empty"], "no profile yet"),
    (["forget", "not-an-address", "--data-dir", "DATA"], "not a Bluetooth address"),
    (["forget", DEVICE, "--adapter", "bogus", "--data-dir", "DATA"], "--adapter"),
    (["forget", DEVICE, "--keys", "NOTJSON", "--data-dir", "DATA"], "not a Bumble key store"),
    (["forget", OTHER, "--keys", "TMP/none.json", "--data-dir", "DATA"], "unknown roller"),
    (["forget", OTHER, "--keys", "TMP", "--data-dir", "DATA"], "is a directory"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a[:2]) + f" {i}"
                                                    for i, (a, _) in enumerate(BAD)])
def test_bad_input_is_one_line_exit_2(argv, message, bad_files, capsys):
    argv = [next((v + a[len(k):] for k, v in bad_files.items() if a.startswith(k)), a)
            for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("smartroller")


@pytest.fixture
def damaged_dir(tmp_path):
    """A real store with ten pages in the middle of its file overwritten (the frames'
    pages: the sessions table, read first, is intact)."""
    d = tmp_path / "damaged"
    d.mkdir()
    with Store(d / "smartroller.db") as store:
        record_session(store)
        store.sync()
    db = d / "smartroller.db"
    pages = db.stat().st_size // 4096
    with open(db, "r+b") as f:
        f.seek(pages // 2 * 4096)
        f.write(b"\xff" * 4096 * 10)
    return d


@pytest.mark.parametrize("argv", [["sessions"], ["sessions", "--json"], ["show", "1"],
                                  ["export", "1", "--out", "OUT"], ["report", "1", "--out",
                                                                    "OUT/r.html"]])
def test_a_damaged_store_is_one_line_naming_the_file(argv, damaged_dir, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    code, out, err = run([*argv, "--data-dir", str(damaged_dir)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"smartroller: error: the session store {damaged_dir}/smartroller.db"
                          " is damaged (database disk image is malformed): restore it")
    assert list((tmp_path / "out").iterdir()) == []


def test_export_and_report_replace_files_only_with_force(data_dir, tmp_path, capsys):
    dd = ["--data-dir", str(data_dir)]
    out_dir, report = tmp_path / "csv", tmp_path / "r.html"
    out_dir.mkdir()
    (out_dir / "events.csv").write_text("mine")
    report.write_text("mine")
    code, out, err = run(["export", "1", "--out", str(out_dir), *dd], capsys)
    assert code == 2 and out == "" and err == (
        f"smartroller: error: --out {out_dir} already holds events.csv: give --force to "
        "replace them, or another directory\n")
    code, out, err = run(["report", "1", "--out", str(report), *dd], capsys)
    assert code == 2 and out == "" and err == (
        f"smartroller: error: {report} is already there: give --force to replace it, or "
        "--out another file\n")
    assert (out_dir / "events.csv").read_text() == "mine" and report.read_text() == "mine"
    assert sorted(p.name for p in out_dir.iterdir()) == ["events.csv"]
    assert run(["export", "1", "--out", str(out_dir), "--force", *dd], capsys)[0] == 0
    assert run(["report", "1", "--out", str(report), "--force", *dd], capsys)[0] == 0
    assert (out_dir / "events.csv").read_text().startswith("id,kind,")
    assert "smartroller session 1" in report.read_text()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_exported_files_have_the_mode_of_any_new_file(umask, data_dir, tmp_path, capsys):
    dd = ["--data-dir", str(data_dir)]
    old = os.umask(umask)
    try:
        assert run(["export", "1", "--out", str(tmp_path / "csv"), *dd], capsys)[0] == 0
        assert run(["report", "1", "--out", str(tmp_path / "r.html"), *dd], capsys)[0] == 0
    finally:
        os.umask(old)
    files = [*sorted((tmp_path / "csv").iterdir()), tmp_path / "r.html"]
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o666 & ~umask] * 5
    # the store stays private
    assert stat.S_IMODE((data_dir / "smartroller.db").stat().st_mode) == 0o600
