"""hardware/install-pi.sh and the systemd unit: the steps it prints, what it writes under
a root directory, idempotence, and a unit that matches the firmware's command line."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from firmware import cli as fw_cli

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "hardware" / "install-pi.sh"
UNIT = REPO / "hardware" / "smartroller-fw.service"
I2C = "dtparam=i2c_arm=on,i2c_arm_baudrate=400000"


def install(*args):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=30)


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    boot = tmp_path / "boot" / "firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text("dtparam=audio=on\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = install("--dry-run", "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needle in ["+ apt-get install", "useradd --system", "-m pip install --upgrade --quiet",
                   f"edit /boot/firmware/config.txt: {I2C}",
                   "+ systemctl disable --now bluetooth.service",
                   "+ systemctl mask bluetooth.service",
                   "write /etc/systemd/system/smartroller-fw.service",
                   "+ systemctl enable smartroller-fw.service", "reboot"]:
        assert needle in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("== ")] == [
        f"{i}/7" for i in range(1, 8)]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (boot / "config.txt").read_text() == "dtparam=audio=on\n"


def test_root_install_writes_the_files_once(tmp_path):
    boot = tmp_path / "boot" / "firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text("#dtparam=i2c_arm=on\ndtparam=i2c_arm=on\n"
                                     "dtparam=audio=on\n")
    first = install("--root", str(tmp_path))
    assert first.returncode == 0, first.stderr
    config = (boot / "config.txt").read_text().splitlines()
    assert config.count(I2C) == 1
    assert [line for line in config if line.startswith("dtparam=i2c_arm")] == [I2C]
    assert "#dtparam=i2c_arm=on" in config and "dtparam=audio=on" in config
    assert (tmp_path / "etc/systemd/system/smartroller-fw.service").read_bytes() == \
        UNIT.read_bytes()
    assert (tmp_path / "etc/smartroller/roller.toml").read_bytes() == \
        (REPO / "hardware/roller.toml").read_bytes()
    assert (tmp_path / "etc/modules-load.d/smartroller-i2c.conf").read_text() == "i2c-dev\n"
    (tmp_path / "etc/smartroller/roller.toml").write_text("# my build\n")
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    second = install("--root", str(tmp_path))
    assert second.returncode == 0
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot
    assert "I2C already on at 400 kHz" in second.stdout and "reboot" not in second.stdout
    assert "roller.toml: up to date (kept)" in second.stdout  # the user's profile stays
    assert "+ systemctl daemon-reload" not in second.stdout  # unit unchanged


def test_compiled_installs_a_compiler_and_builds_the_firmware_with_mypyc(tmp_path):
    plain = install("--dry-run", "--root", str(tmp_path))
    compiled = install("--dry-run", "--compiled", "--root", str(tmp_path))
    assert plain.returncode == 0 and compiled.returncode == 0, compiled.stderr
    apt = [line for line in compiled.stdout.splitlines() if "apt-get install" in line]
    assert len(apt) == 1 and apt[0].split()[-1] == "gcc"
    assert "[pi,compile]" in compiled.stdout
    build = [line for line in compiled.stdout.splitlines() if "SMARTROLLER_COMPILE=1" in line]
    assert len(build) == 1 and "--no-build-isolation" in build[0]
    assert "SMARTROLLER_COMPILE" not in plain.stdout and " gcc" not in plain.stdout
    assert "[pi]" in plain.stdout and "compile]" not in plain.stdout


def test_bad_options_exit_2(tmp_path):
    assert install("--frobnicate").returncode == 2
    assert install("--root", str(tmp_path / "missing")).returncode == 2
    assert install("--dry-run", "--source", str(tmp_path)).returncode == 2
    assert install("--help").returncode == 0


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_script_is_shellcheck_clean():
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_unit_has_watchdog_restart_and_capabilities():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(UNIT)
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) >= 4  # kicked every half of it by the firmware
    assert service["Restart"] == "on-failure"
    assert set(service["AmbientCapabilities"].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert set(service["CapabilityBoundingSet"].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert "bluetooth.service" in unit["Unit"]["Conflicts"]
    assert "hci0 down" in service["ExecStartPre"]
    command = service["ExecStart"].split()
    assert command[0] == "/opt/smartroller/venv/bin/smartroller-fw"
    assert "PREFIX=/opt/smartroller" in SCRIPT.read_text()
    args = fw_cli._parser().parse_args(command[1:])  # the firmware accepts these flags
    assert (args.command, str(args.config), args.transport) == (
        "run", "/etc/smartroller/roller.toml", "hci-socket:0")


def test_a_reinstall_keeps_the_compiled_build_until_pure_is_asked(tmp_path):
    (tmp_path / "boot" / "firmware").mkdir(parents=True)
    build = tmp_path / "opt/smartroller/build"
    first = install("--compiled", "--root", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert build.read_text() == "compiled\n"
    again = install("--root", str(tmp_path))  # an update of the checkout, no flag
    assert again.returncode == 0, again.stderr
    assert "keeping the compiled build" in again.stdout
    assert "SMARTROLLER_COMPILE=1" in again.stdout and "[pi,compile]" in again.stdout
    assert build.read_text() == "compiled\n"
    back = install("--pure", "--root", str(tmp_path))
    assert back.returncode == 0, back.stderr
    assert "SMARTROLLER_COMPILE" not in back.stdout and "keeping" not in back.stdout
    assert build.read_text() == "pure\n"
    plain = install("--root", str(tmp_path))
    assert "SMARTROLLER_COMPILE" not in plain.stdout and build.read_text() == "pure\n"
