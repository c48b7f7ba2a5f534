"""CSV export: columns and units, values against the store, RFC 4180, atomic writes."""

import csv
import io
import math

import pytest

from host.analysis.model import Event, EventKind, level_name
from host.export import csv as export_mod
from host.export.csv import FILES, ExportError, export_session, sample_header
from host.store import Store
from host.timefmt import parse_iso_utc
from tests.sessions import START_UTC, record_session

MESSAGE = 'Übung: stroke "too long", 140 mm\nnext line'


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "s.db"
    with Store(path) as store:
        sid = record_session(store)
        store.add_event(sid, Event(EventKind.LUMBAR_WARNING, 5.0, 5.75, MESSAGE, 0.82))
        store.add_event(sid, Event(EventKind.DISCONNECT, 6.0, None, "link lost"))
        yield store.load(sid)


def read(path):
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    return raw, list(csv.reader(io.StringIO(text, newline="")))


def test_files_columns_and_units(data, tmp_path):
    paths = export_session(data, tmp_path / "out")
    assert [p.name for p in paths] == list(FILES)
    _, rows = read(tmp_path / "out" / "samples.csv")
    header = rows[0]
    assert header == sample_header(8)
    for name in ["utc", "t_s", "position_mm", "velocity_mm_s", "load_total_n",
                 "load_zone_1_n", "load_zone_8_n", "level", "vertebra", "region",
                 "p_below_ribs"]:
        assert name in header
    assert len(rows) == 1 + len(data.frames)
    assert all(len(r) == len(header) for r in rows)


def test_sample_values_match_the_store(data, tmp_path):
    export_session(data, tmp_path)
    _, rows = read(tmp_path / "samples.csv")
    header, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    f, e = data.frames, data.estimates
    for i in range(0, len(body), 37):
        r = body[i]
        assert (int(r[col["boot"]]), int(r[col["seq"]])) == (f.boot[i], f.seq[i])
        assert parse_iso_utc(r[col["utc"]]) == pytest.approx(f.utc[i], abs=6e-4)
        assert r[col["utc"]].endswith("Z") and len(r[col["utc"]]) == 24
        assert float(r[col["t_s"]]) == pytest.approx(f.utc[i] - START_UTC, abs=6e-4)
        assert float(r[col["position_mm"]]) == pytest.approx(f.position[i] * 1e3, abs=0.006)
        assert float(r[col["velocity_mm_s"]]) == pytest.approx(f.velocity[i] * 1e3, abs=0.06)
        assert float(r[col["angle_deg"]]) == pytest.approx(math.degrees(f.angle[i]), abs=0.006)
        assert float(r[col["load_total_n"]]) == pytest.approx(f.total_load[i], abs=0.06)
        for z in range(8):
            assert float(r[col[f"load_zone_{z + 1}_n"]]) == pytest.approx(f.zones[i, z],
                                                                           abs=0.06)
        assert int(r[col["flags"]]) == f.flags[i]
        assert r[col["in_contact"]] == str(int(f.flags[i]) & 1)
        assert float(r[col["level"]]) == pytest.approx(e.level[i], abs=0.006)
        assert r[col["vertebra"]] == level_name(float(e.level[i]))
        assert float(r[col["p_below_ribs"]]) == pytest.approx(e.p_below_ribs[i], abs=6e-4)
        assert float(r[col["back_mm"]]) == pytest.approx(e.back_m[i] * 1e3, abs=0.06)
    assert {r[col["region"]] for r in body} <= {"upper_thoracic", "mid_thoracic",
                                                "lower_thoracic", "lumbar", "cervical"}


def test_strokes_and_events_files(data, tmp_path):
    export_session(data, tmp_path)
    _, strokes = read(tmp_path / "strokes.csv")
    col = {n: i for i, n in enumerate(strokes[0])}
    assert len(strokes) - 1 == len(data.strokes) > 3
    for row, (_, s) in zip(strokes[1:], data.strokes, strict=True):
        assert int(row[col["index"]]) == s.index
        assert float(row[col["amplitude_mm"]]) == pytest.approx(s.amplitude_m * 1e3, abs=0.06)
        assert float(row[col["duration_s"]]) == pytest.approx(s.duration_s, abs=6e-4)
        assert parse_iso_utc(row[col["start_utc"]]) == pytest.approx(START_UTC + s.start_t,
                                                                      abs=6e-4)
        assert row[col["direction"]] == ("toward_feet" if s.direction > 0 else "toward_head")
        assert row[col["regions"]].split(";") == list(s.regions)
    _, events = read(tmp_path / "events.csv")
    col = {n: i for i, n in enumerate(events[0])}
    by_kind = {r[col["kind"]]: r for r in events[1:]}
    warning = by_kind["lumbar_warning"]
    assert warning[col["message"]] == MESSAGE  # quotes, comma, newline, non-ASCII survive
    # A lumbar warning's value is a probability (it was printed as 820 "mm").
    assert (warning[col["value"]], warning[col["value_unit"]]) == ("0.820", "probability")
    assert float(warning[col["duration_s"]]) == pytest.approx(0.75)
    assert float(warning[col["start_s"]]) == pytest.approx(5.0, abs=1e-3)
    assert by_kind["disconnect"][col["end_utc"]] == "" and by_kind["disconnect"][
        col["value"]] == ""
    _, dwells = read(tmp_path / "dwells.csv")
    assert len(dwells) == 1 + len(data.dwells)


def test_rfc4180_crlf_quoting_utf8(data, tmp_path):
    export_session(data, tmp_path)
    for name in FILES:
        raw = (tmp_path / name).read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf")  # no byte-order mark
        raw.decode("utf-8")
        assert raw.endswith(b"\r\n")
        inside = MESSAGE.count("\n") if name == "events.csv" else 0  # in a quoted field
        assert raw.count(b"\n") - raw.count(b"\r\n") == inside
    raw = (tmp_path / "events.csv").read_bytes().decode("utf-8")
    assert ',"Übung: stroke ""too long"", 140 mm\nnext line",' in raw
    assert ",link lost," in raw  # no quotes where none are needed


def test_failed_export_leaves_no_partial_file(data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    export_session(data, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = export_mod._write_csv
    calls = []

    def failing(directory, name, *args):
        calls.append(name)
        if name == "dwells.csv":
            raise OSError(28, "No space left on device")
        return real(directory, name, *args)

    monkeypatch.setattr(export_mod, "_write_csv", failing)
    with pytest.raises(ExportError, match="No space left"):
        export_session(data, out)
    assert calls == ["samples.csv", "strokes.csv", "dwells.csv"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old files intact
    fresh = tmp_path / "fresh"
    with pytest.raises(ExportError):
        export_session(data, fresh)
    assert list(fresh.iterdir()) == []  # no file at all, no temporary left


def test_output_directory_that_is_a_file(data, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        export_session(data, tmp_path / "f")
