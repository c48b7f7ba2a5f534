import math

import pytest

from host.analysis.model import Event, EventKind, Region, Stroke, level_name


@pytest.mark.parametrize(("level", "name", "region"), [
    (0.5, "C7", Region.CERVICAL), (1.0, "T1", Region.UPPER_THORACIC),
    (4.99, "T4", Region.UPPER_THORACIC), (5.0, "T5", Region.MID_THORACIC),
    (9.0, "T9", Region.LOWER_THORACIC), (12.99, "T12", Region.LOWER_THORACIC),
    (13.0, "L1", Region.LUMBAR), (17.5, "L5", Region.LUMBAR), (25.0, "L5", Region.LUMBAR),
    (-2.0, "C7", Region.CERVICAL),
])
def test_levels_and_regions(level, name, region):
    assert level_name(level) == name
    assert Region.at_level(level) is region


def test_unknown_level_has_no_name():
    assert level_name(math.nan) == ""


def test_stroke_and_event_derived_figures():
    s = Stroke(0, 10.0, 11.5, -1, 0.05, -0.03, 0.2, 0.1, 200.0, 250.0)
    assert s.amplitude_m == pytest.approx(0.08)
    assert s.duration_s == pytest.approx(1.5)
    assert Event(EventKind.LUMBAR_WARNING, 3.0, 4.25, "x").duration_s == pytest.approx(1.25)
    assert Event(EventKind.APPROACH, 3.0, None, "x").duration_s is None
