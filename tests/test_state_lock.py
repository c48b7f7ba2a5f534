"""One roller process per state directory (firmware/state_lock.py): a second is refused
in one line naming the first, and a lock left by a process that ended never blocks."""

import subprocess
import sys

import pytest

from firmware import cli as fw_cli
from firmware.state_lock import StateDirBusy, StateLock

HOLDER = ("import sys, time\n"
          "from firmware.state_lock import StateLock\n"
          "StateLock(sys.argv[1]).acquire()\n"
          "print('held', flush=True)\n"
          "time.sleep(60)\n")


def test_a_second_lock_on_the_same_state_directory_is_refused_naming_the_first(tmp_path):
    first = StateLock(tmp_path)
    first.acquire()
    with pytest.raises(StateDirBusy) as busy:
        StateLock(tmp_path).acquire()
    assert busy.value.pid is not None and str(busy.value.pid) in str(busy.value)
    first.release()
    with StateLock(tmp_path):  # let go: free again
        pass


def test_a_table_roll_beside_a_running_roller_is_refused_before_it_rolls(tmp_path, capsys):
    # The roller's service still running would overwrite the measured scale with its own
    # on its next save: the table roll must not start, and must say who holds it.
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = fw_cli.main(["table-roll", "--sim", "--seed", "2", "--state-dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1
        assert f"pid {holder.pid}" in err and "systemctl stop smartroller-fw" in err
        assert not (tmp_path / "calibration.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone (killed, its lock file left behind): nothing blocks any more
    code = fw_cli.main(["table-roll", "--sim", "--seed", "2", "--state-dir", str(tmp_path)])
    assert code == 0 and (tmp_path / "calibration.json").exists()
    code = fw_cli.main(["table-roll", "--sim", "--seed", "2", "--state-dir", str(tmp_path)])
    assert code == 0  # the command let its own lock go when it ended
