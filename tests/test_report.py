"""The HTML report: well-formed, self-contained, and carrying the session's figures."""

import re
import xml.etree.ElementTree as ET

import pytest

from host.analysis.model import Event, EventKind
from host.export.report import WARNING_COLOUR, figures, render_report, write_report
from host.store import Store
from tests.sessions import record_session

NS = {"h": "http://www.w3.org/1999/xhtml", "s": "http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    with Store(tmp_path_factory.mktemp("report") / "s.db") as store:
        sid = record_session(store)
        store.add_event(sid, Event(EventKind.LUMBAR_WARNING, 9.0, 10.5, "below <the> ribs",
                                   0.01))
        yield store.load(sid)


def test_report_is_well_formed_and_self_contained(data, tmp_path):
    path = write_report(data, tmp_path / "r.html", "ann & co")
    text = path.read_text(encoding="utf-8")
    root = ET.fromstring(text.split("\n", 1)[1])  # after <!DOCTYPE html>
    assert root.tag == "{http://www.w3.org/1999/xhtml}html"
    assert len(root.findall(".//s:svg", NS)) == 3
    assert "<script" not in text and "<link" not in text and " src=" not in text
    urls = set(re.findall(r"https?://[^\"' ]+", text))
    assert urls <= {"http://www.w3.org/1999/xhtml", "http://www.w3.org/2000/svg"}
    assert "below &lt;the&gt; ribs" in text and "ann &amp; co" in text


def test_report_carries_the_figures(data):
    fig = figures(data)
    root = ET.fromstring(render_report(data).split("\n", 1)[1])
    cells = {th.text: td.text for tr in root.findall(".//h:table[@id='summary']/h:tr", NS)
             for th, td in [tr]}
    assert cells["Frames"] == str(len(data.frames))
    assert cells["Strokes"] == str(len(data.strokes)) == str(fig.strokes)
    assert cells["Lumbar warnings"] == "1" == str(fig.warnings)
    assert cells["Mean stroke amplitude"] == f"{fig.mean_amplitude_mm:.1f} mm"
    amplitudes = [s.amplitude_m for _, s in data.strokes]
    assert fig.mean_amplitude_mm == pytest.approx(sum(amplitudes) / len(amplitudes) * 1e3)
    # time per level: a bar per level with its seconds, summing to the time in contact
    levels = root.findall(".//s:svg[@aria-label='time per vertebral level']/s:rect/s:title",
                          NS)
    shown = {t.text.split(":")[0]: float(t.text.split(":")[1].strip(" s")) for t in levels}
    assert len(shown) == 18
    for name, seconds in fig.level_s.items():
        assert shown[name] == pytest.approx(seconds, abs=0.05)
    known_contact = sum(fig.level_s.values())
    assert known_contact == pytest.approx(fig.contact_s, abs=0.05)
    # the warning is drawn as a red band over its time
    position = root.findall(".//s:svg", NS)[0]
    assert position.get("aria-label").startswith("Roller position over time")
    bands = [r for r in position.iter("{http://www.w3.org/2000/svg}rect")
             if r.get("fill") == WARNING_COLOUR]
    span = data.session.duration_s
    assert len(bands) == 1
    assert float(bands[0].get("width")) == pytest.approx(1.5 / span * 860, abs=1.0)
    events = root.findall(".//h:table[@id='events']/h:tr", NS)
    assert len(events) == 1 + len(data.events)


def test_empty_session_still_renders(tmp_path):
    with Store(tmp_path / "e.db") as store:
        s = store.open_session("AA:BB:CC:DD:EE:FF", 1000.0)
        page = render_report(store.load(s.id))
    ET.fromstring(page.split("\n", 1)[1])
    assert ">0</td>" in page


def test_a_warning_over_no_estimated_time_below_says_both_for_what_they_are(data):
    """The lumbar warning starts at 20 % likely below the ribs: it can buzz while the
    estimated level is above them. The report headlined a warning beside "0.0 s below
    the rib cage" with nothing saying which was which."""
    fig = figures(data)
    assert fig.warnings == 1 and fig.warned_s == pytest.approx(1.5)
    assert fig.below_ribs_s == 0.0  # this made-up session never reaches T12/L1
    root = ET.fromstring(render_report(data).split("\n", 1)[1])
    cells = {th.text: td.text for tr in root.findall(".//h:table[@id='summary']/h:tr", NS)
             for th, td in [tr]}
    assert cells["Time warned (the buzz: 20% likely below the rib cage or more)"] == "1.5 s"
    assert cells["Time with the estimated level below the rib cage"] == "0.0 s"
    assert "Time below the rib cage" not in cells


def _summary(page: str) -> dict:
    root = ET.fromstring(page.split("\n", 1)[1])
    return {th.text: td.text for tr in root.findall(".//h:table[@id='summary']/h:tr", NS)
            for th, td in [(tr.find("h:th", NS), tr.find("h:td", NS))]}


def test_an_uncalibrated_session_says_so_and_what_calibrating_would_change(tmp_path):
    from host.analysis.calibration import UNCALIBRATED_NOTE

    with Store(tmp_path / "s.db") as store:
        plain = store.load(record_session(store))
        whole = record_session(store, utc0=1_780_000_100.0)
        store.add_event(whole, Event(EventKind.UNCALIBRATED, 0.0, 20.0,
                                     f"uncalibrated session: wider margin; {UNCALIBRATED_NOTE}",
                                     1.0))
        part = record_session(store, utc0=1_780_000_200.0)
        store.add_event(part, Event(EventKind.UNCALIBRATED, 0.0, 8.0, "until the calibration",
                                    0.0))
        whole_page = render_report(store.load(whole))
        part_page = render_report(store.load(part))
    plain_page = render_report(plain)
    assert "Calibration" not in _summary(plain_page) and 'id="uncalibrated"' not in plain_page
    summary = _summary(whole_page)
    assert summary["Calibration"] == "none: an uncalibrated session"
    assert 'id="uncalibrated"' in whole_page and "fewer needless buzzes" in whole_page
    assert any(k.startswith("Time warned (the buzz: 10%") for k in summary)
    summary = _summary(part_page)
    assert summary["Calibration"].startswith("in this session")
    assert 'id="uncalibrated"' not in part_page
    assert any(k.startswith("Time warned (the buzz: 20%") for k in summary)
