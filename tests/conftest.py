"""Every test runs with its own data directory (``SMARTROLLER_DATA_DIR``), inherited by
the processes it starts: no test reads or writes the user's own store (a test that
paired a roller wrote it to ``~/.local/share/smartroller``, where a run of another
checkout of the code then found a database of another schema)."""

import pytest


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("SMARTROLLER_DATA_DIR", str(tmp_path_factory.mktemp("data")))


def pytest_collection_modifyitems(config, items) -> None:
    """Under pytest-xdist (``make test`` runs two workers, ``--dist loadgroup``): the
    end-to-end runs across processes (``tests/test_e2e_*``, and tests marked ``e2e``)
    run one after another in one worker, as they would alone (each waits on real time
    and starts its own processes); every other module runs whole in one worker (its
    module-scoped simulations are made once)."""
    for item in items:
        module = item.nodeid.split("::")[0]
        e2e = module.startswith("tests/test_e2e_") or item.get_closest_marker("e2e")
        item.add_marker(pytest.mark.xdist_group("e2e" if e2e else module))
