"""Every test runs with its own data directory (``SMARTROLLER_DATA_DIR``), inherited by
the processes it starts: no test reads or writes the user's own store (a test that
paired a roller wrote it to ``~/.local/share/smartroller``, where a run of another
checkout of the code then found a database of another schema)."""

import pytest


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("SMARTROLLER_DATA_DIR", str(tmp_path_factory.mktemp("data")))
