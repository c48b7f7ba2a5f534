"""The command lines: frames flow, and bad input is one line with exit status 2."""

import json

import pytest

from firmware import cli as fw_cli
from host.cli import main as host_cli


def run(main, argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_sim_prints_frames(capsys):
    code, out, _ = run(fw_cli.main, ["sim", "--duration", "6", "--every", "1"], capsys)
    assert code == 0
    assert out.count("pos=") >= 5 and "done:" in out


def test_sim_jsonl_frames_are_json(capsys):
    code, out, _ = run(fw_cli.main, ["sim", "--duration", "2", "--every", "0.5", "--jsonl"],
                       capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and {"position_mm", "load_total_n", "zone_loads_n"} <= set(rows[0])


def test_record_and_replay(tmp_path, capsys):
    raw = tmp_path / "s.srraw"
    code, out, _ = run(fw_cli.main, ["record-raw", str(raw), "--sim", "--duration", "5"], capsys)
    assert code == 0 and raw.exists()
    from firmware.rawlog import open_log
    fh, log = open_log(raw)
    fh.close()
    assert log.boot_id != 0  # the simulated roller's own, a fresh one each boot
    csv = tmp_path / "frames.csv"
    code, out, _ = run(fw_cli.main, ["replay", str(raw), "--out", str(csv)], capsys)
    assert code == 0
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("seq,t_s,position_mm") and len(lines) > 400


def test_record_raw_keeps_the_calibration_the_roller_started_from(tmp_path, capsys):
    from firmware.calibration import Calibration, save_calibration
    from firmware.rawlog import open_log

    learned = Calibration(imu_clock_ratio=1.004, imu_clock_span_s=300.0, gyro_scale=1.02,
                          gyro_scale_weight=1e5, updated_utc=1.7e9)
    save_calibration(tmp_path, learned)
    raw = tmp_path / "s.srraw"
    code, _, _ = run(fw_cli.main, ["record-raw", str(raw), "--sim", "--duration", "2",
                                   "--state-dir", str(tmp_path)], capsys)
    assert code == 0
    fh, log = open_log(raw)
    fh.close()
    assert log.calibration == learned
    fresh = tmp_path / "fresh.srraw"
    assert fw_cli.main(["record-raw", str(fresh), "--sim", "--duration", "1"]) == 0
    fh, log = open_log(fresh)
    fh.close()
    assert log.calibration == Calibration()  # no state directory: a new roller's values


@pytest.mark.parametrize("argv, message", [
    (["sim", "--scenario", "/nonexistent.toml"], "no such file"),
    (["sim", "--config", "/nonexistent.toml"], "no such file"),
    (["replay", "/nonexistent.srraw"], "No such file"),
    (["record-raw", "/tmp/x.srraw"], "needs a Raspberry Pi"),
    (["record-raw", "/tmp/x.srraw", "--sim", "--state-dir", "/nonexistent"], "not a directory"),
    (["run"], "cannot open the I2C bus"),
])
def test_firmware_cli_errors_are_one_line_exit_2(argv, message, capsys):
    code, _, err = run(fw_cli.main, argv, capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_bad_scenario_key_names_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[routine]\ncadence = 3\n")
    code, _, err = run(fw_cli.main, ["sim", "--scenario", str(bad)], capsys)
    assert code == 2 and "routine.cadence: unknown key" in err


def test_truncated_raw_log_is_exit_2(tmp_path, capsys):
    raw = tmp_path / "s.srraw"
    assert fw_cli.main(["record-raw", str(raw), "--sim", "--duration", "2"]) == 0
    raw.write_bytes(raw.read_bytes()[:-7])
    capsys.readouterr()
    code, _, err = run(fw_cli.main, ["replay", str(raw)], capsys)
    assert code == 2 and "cut short" in err
    code, out, _ = run(fw_cli.main, ["replay", str(raw), "--salvage"], capsys)
    assert code == 0 and out.count("\n") > 100


@pytest.mark.parametrize("argv", [["bench", "--seeds", "0"], ["bench", "--duration", "x"],
                                  ["demo", "--speed", "-1"], ["demo", "--speed", "0"], ["nope"]])
def test_host_cli_bad_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        host_cli.main(argv)
    assert exit_.value.code == 2


def test_demo_never_removes_a_directory_that_holds_what_no_demo_wrote(tmp_path, capsys):
    mine = tmp_path / "notes.txt"
    mine.write_text("the user's")
    code, _, err = run(host_cli.main, ["demo", "--out", str(tmp_path)], capsys)
    assert code == 2 and "no demo wrote" in err and err.count("\n") == 1
    assert mine.read_text() == "the user's"


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_demo_with_an_out_it_cannot_write_says_so_in_one_line_and_exits_2(where, tmp_path,
                                                                        capsys):
    blocker = tmp_path / "f"
    blocker.write_text("not a directory")
    out_dir = blocker if where == "a file" else blocker / "demo"
    code, out, err = run(host_cli.main, ["demo", "--out", str(out_dir)], capsys)
    assert code == 2
    assert err.startswith("smartroller: error: --out: ") and err.count("\n") == 1
    assert blocker.read_text() == "not a directory"  # nothing of the user's touched


def test_bench_scores_a_short_session(capsys):
    code, out, _ = run(host_cli.main, ["bench", "--seeds", "1", "--duration", "40", "--jobs",
                                       "1", "--json"], capsys)
    assert code == 0
    summary = json.loads(out)["summary"]
    assert summary["sessions"] == 2 and summary["fifo_overflows"] == 0  # calibrated + not
    assert 0 < summary["rolling_rmse_mm"] < 5
    # the rolling error's bounds: every session replayed with the truth's loads
    sessions = json.loads(out)["sessions"]
    assert all(0 < s["rolling_rmse_bound_mm"] < 5 and 0 < s["rolling_rmse_oracle_mm"] < 5
               for s in sessions)
    assert 0 < summary["rolling_rmse_bound_mm"] < 5 and 0 < summary["rolling_rmse_oracle_mm"] < 5
    assert summary["zone_scan_hz_min"] > 49




def test_bench_text_gives_a_block_per_scenario_file(tmp_path, monkeypatch, capsys):
    """Several --scenario files: the pooled summary, then each file's own block under
    its name (a name repeated gets #2); one file: the summary alone."""
    from host.bench import suite as bench_suite

    seen = {}

    def fake_bench(scenarios, seeds, duration, jobs, progress=None, names=None):
        seen["names"] = names
        out = {"summary": {"sessions": 2 * len(scenarios), "rolling_rmse_mm": 1.25},
               "sessions": []}
        if len(scenarios) > 1:
            out["by_scenario"] = {
                name: {"sessions": 2, "rolling_rmse_mm": float(k)}
                for k, name in enumerate(bench_suite.unique_names(names))}
        return out

    monkeypatch.setattr(bench_suite, "run_bench", fake_bench)
    a, b = tmp_path / "small.toml", tmp_path / "tall.toml"
    a.write_text("[session]\nduration_s = 60.0\n")
    b.write_text("[session]\nduration_s = 60.0\n")
    code, out, _ = run(host_cli.main, ["bench", "--scenario", str(a), "--scenario", str(b),
                                       "--scenario", str(a), "--seeds", "1"], capsys)
    assert code == 0 and seen["names"] == ["small", "tall", "small"]
    blocks = out.split("\n\n")
    assert "sessions" in blocks[0] and "6" in blocks[0] and "1.250" in blocks[0]
    assert [blk.splitlines()[0] for blk in blocks[1:]] == ["small:", "tall:", "small#2:"]
    assert "2.000" in blocks[3] and "0.000" in blocks[1]
    code, out, _ = run(host_cli.main, ["bench", "--scenario", str(a), "--seeds", "1"], capsys)
    assert code == 0 and ":" not in out and "1.250" in out
