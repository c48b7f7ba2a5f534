"""The daemon's service examples in docs/services are well-formed and run the daemon."""

import configparser
import plistlib
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_systemd_user_unit():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DOCS / "services" / "smartroller-daemon.service")
    assert unit["Service"]["ExecStart"].split()[1:] == ["daemon"]
    assert unit["Service"]["ExecStart"].split()[0].endswith("/bin/smartroller")
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "default.target"  # a user unit, at login


def test_launchd_agent():
    with open(DOCS / "services" / "org.smartroller.daemon.plist", "rb") as fh:
        plist = plistlib.load(fh)
    assert plist["Label"] == "org.smartroller.daemon"
    assert plist["ProgramArguments"][1:] == ["daemon"]
    assert plist["ProgramArguments"][0].endswith("/bin/smartroller")
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert all(v.startswith("/") for v in (plist["StandardOutPath"],
                                          plist["ProgramArguments"][0]))  # no ~ in launchd


def test_daemon_doc_shows_the_files_it_ships():
    text = (DOCS / "daemon.md").read_text()
    unit = (DOCS / "services" / "smartroller-daemon.service").read_text()
    assert "ExecStart=%h/.smartroller/bin/smartroller daemon" in text and \
        "ExecStart=%h/.smartroller/bin/smartroller daemon" in unit
    assert "launchctl bootstrap" in text and "systemctl --user enable --now" in text
