"""The simulated roller keeps its journal on disk, as the Pi does (issue 18.3).

``smartroller-fw sim --host-adapter`` with a ``--state-dir``: frames no host has
acknowledged survive the process and the next run, a new boot, goes on after them.
"""

import asyncio
import socket

from firmware.ble.simcli import fresh_boot_id, run_sim_with_radio, sim_journal, unacked
from firmware.journal import Journal
from firmware.sim.rig import SimRoller


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(state_dir, seconds: float, lines: list[str], linger_s: float = 0.0) -> SimRoller:
    journal = sim_journal(state_dir)
    roller = SimRoller(seed=4, boot_id=fresh_boot_id(), first_seq=journal.next_seq)
    asyncio.run(run_sim_with_radio(roller, f"tcp-server:127.0.0.1:{_free_port()}",
                                   speed=20.0, until=seconds, state_dir=state_dir,
                                   interval_ms=0, say=lines.append, journal=journal,
                                   linger_s=linger_s))
    return roller


def test_frames_no_host_acknowledged_survive_the_process_and_a_new_boot_follows(tmp_path):
    lines: list[str] = []
    first = _run(tmp_path, 2.0, lines, linger_s=0.3)
    assert any("staying up" in line for line in lines)
    assert any("stay in the journal" in line for line in lines)
    second = _run(tmp_path, 2.0, lines)
    assert second.boot_id != first.boot_id  # the same seed, a new boot
    made = first.firmware.frames + second.firmware.frames
    with Journal(tmp_path / "journal") as journal:
        assert unacked(journal) == made  # nothing lost with the process
        held = journal.read(0, made + 10)
    assert [f.seq for f in held] == list(range(made))  # no seq reused
    assert {f.boot for f in held} == {first.boot_id, second.boot_id}


def test_a_roller_built_behind_its_journal_is_refused(tmp_path):
    lines: list[str] = []
    _run(tmp_path, 1.0, lines)
    try:
        asyncio.run(run_sim_with_radio(SimRoller(seed=4), "tcp-server:127.0.0.1:1",
                                       state_dir=tmp_path, say=lines.append))
    except ValueError as exc:
        assert "first_seq" in str(exc)
    else:
        raise AssertionError("a roller reusing the journal's seqs was accepted")


def test_the_roller_on_the_radio_keeps_what_it_learned_of_its_parts(tmp_path):
    """``smartroller-fw sim --host-adapter`` keeps its calibration in its state directory
    as the Pi does (firmware/calibration.py; the next boot starts from it: test_parts)."""
    from firmware import cli as fw_cli
    from firmware.calibration import load_calibration

    assert fw_cli.main(["sim", "--seed", "4", "--duration", "40", "--speed", "20",
                        "--every", "0", "--interval-ms", "0", "--linger", "0",
                        "--host-adapter", f"tcp-server:127.0.0.1:{_free_port()}",
                        "--state-dir", str(tmp_path)]) == 0
    kept = load_calibration(tmp_path)
    assert (tmp_path / "calibration.json").exists() and kept.imu_clock_span_s > 30.0
    assert kept.imu_clock_ratio != 1.0  # this part's clock, measured
