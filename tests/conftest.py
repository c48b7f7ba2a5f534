"""Every test runs with its own data directory (``SMARTROLLER_DATA_DIR``), inherited by
the processes it starts: no test reads or writes the user's own store (a test that
paired a roller wrote it to ``~/.local/share/smartroller``, where a run of another
checkout of the code then found a database of another schema)."""

import pytest


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("SMARTROLLER_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs two pytest-xdist workers (``--dist loadscope``), and this says
    what runs together: the end-to-end runs across processes (``tests/test_e2e_*``) one
    after another in one worker, as each would alone (it waits on real time and starts
    its own processes); every other module whole in one worker (its module-scoped
    simulations are made once). (pytest-xdist's own ``xdist_group`` marks have no effect
    with pytest 9.2, whose node ids xdist 3.8 cannot suffix.)"""
    from xdist.scheduler import LoadScopeScheduling

    if not all(hasattr(LoadScopeScheduling, name)
               for name in ("_split_scope", "_assign_work_unit")):
        return None  # another xdist: its own --dist loadscope (slower, still right)
    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            return "e2e" if module.startswith("tests/test_e2e_") else module

        def _assign_work_unit(self, node: object) -> None:
            if "e2e" in self.workqueue:  # the longest unit first: the other worker
                self.workqueue.move_to_end("e2e", last=False)  # takes the rest meanwhile
            super()._assign_work_unit(node)

    return ByModule(config, log)
