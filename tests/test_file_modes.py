"""Bond keys, the journal and the session store are for their owner only (0600 / 0700).

On both sides: the roller's key store and state and journal directories, the host's
key store, data directory and SQLite files; new ones are created so, existing ones
(made 0644 / 0755 by an older version) are tightened when opened.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

import firmware.ble.keystore as roller_keys
import host.ble.keystore as host_keys
from firmware.files import private_dir as roller_private_dir
from firmware.files import write_private
from firmware.journal import Journal
from host.paths import check_dir, private_dir
from host.store import Store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _open_to_all(directory: Path, file: Path | None = None) -> None:
    """What an older version (or the umask) left: 0755 directory, 0644 file."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    if file is not None:
        file.write_text(json.dumps({"__DEFAULT__": {}}), encoding="utf-8")
        os.chmod(file, 0o644)


@pytest.mark.parametrize("store_class", [roller_keys.PrivateKeyStore,
                                         host_keys.PrivateKeyStore], ids=["roller", "host"])
def test_key_store_is_created_private(tmp_path, store_class):
    keys = tmp_path / "state" / "keys.json"
    store = store_class(None, keys)
    assert mode(keys.parent) == 0o700
    asyncio.run(store.save({"__DEFAULT__": {"E0:11:22:33:44:55": {"ltk": {"value": "00"}}}}))
    assert mode(keys) == 0o600 and mode(keys.parent) == 0o700
    assert json.loads(keys.read_text())["__DEFAULT__"]["E0:11:22:33:44:55"]
    assert [p.name for p in keys.parent.iterdir()] == ["keys.json"]  # no temporary left


@pytest.mark.parametrize("store_class", [roller_keys.PrivateKeyStore,
                                         host_keys.PrivateKeyStore], ids=["roller", "host"])
def test_existing_key_store_is_tightened_at_start(tmp_path, store_class):
    keys = tmp_path / "state" / "keys.json"
    _open_to_all(keys.parent, keys)
    store_class(None, keys)
    assert mode(keys) == 0o600 and mode(keys.parent) == 0o700


def test_roller_state_and_journal_directories_are_private(tmp_path):
    _open_to_all(tmp_path / "journal")
    with Journal(tmp_path / "journal"):
        assert mode(tmp_path / "journal") == 0o700
    assert mode(roller_private_dir(tmp_path / "new" / "state")) == 0o700
    write_private(tmp_path / "new" / "state" / "x", "secret")
    assert mode(tmp_path / "new" / "state" / "x") == 0o600


@pytest.mark.parametrize("make_private", [private_dir, roller_private_dir],
                         ids=["host", "roller"])
def test_shared_directories_are_left_alone(tmp_path, make_private):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    make_private(shared)
    assert mode(shared) == 0o1777


def test_session_store_and_data_directory_are_private(tmp_path):
    data = tmp_path / "data"
    _open_to_all(data)
    check_dir(data, private=True)
    assert mode(data) == 0o700
    with Store(data / "smartroller.db") as store:
        store.sync()
        files = sorted(data.iterdir())
        assert {p.name for p in files} >= {"smartroller.db", "smartroller.db-wal"}
        assert all(mode(p) == 0o600 for p in files), [(p.name, oct(mode(p))) for p in files]
    os.chmod(data / "smartroller.db", 0o644)  # an older version's file
    with Store(data / "smartroller.db"):
        assert mode(data / "smartroller.db") == 0o600
    check_dir(tmp_path / "out", "output directory")  # exports stay as the user likes
    assert mode(tmp_path / "out") == 0o777 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
