"""The firmware compiled with mypyc (setup.py's ``COMPILED``, ``make firmware-compiled``)
does what the pure-Python modules do: on tapes recorded from the simulated roller (a
suite person's calibrated start, and a bus with every kind of fault), a replay through
the compiled build gives the same bus calls (no divergence), the same frames (``repr``,
every field, bit for bit) and the same log lines as a replay through this checkout's
pure modules.

Skipped where there is no compiled build (``.venv-compiled``, or the Python named by
``SMARTROLLER_COMPILED_PYTHON``) or where it was built from other sources than this
checkout's."""

import ast
import dataclasses
import filecmp
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.sim.rig import SimRoller
from firmware.sim.scenario import default_scenario
from host.bench.suite import suite

REPO = Path(__file__).resolve().parents[1]


def _compiled_python() -> Path:
    named = os.environ.get("SMARTROLLER_COMPILED_PYTHON")
    return Path(named) if named else REPO / ".venv-compiled" / "bin" / "python"


COMPILED_PYTHON = _compiled_python()
pytestmark = pytest.mark.skipif(
    not COMPILED_PYTHON.exists(),
    reason=f"no compiled build of the firmware at {COMPILED_PYTHON}: `make firmware-compiled`"
    " builds one with mypyc (SMARTROLLER_COMPILED_PYTHON names another)")


def _compiled_modules() -> list[str]:
    """setup.py's ``COMPILED``, as module names (read, not imported: setuptools need not
    be installed here)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    paths = next(ast.literal_eval(node.value) for node in tree.body
                 if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED")
    return [path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            for path in paths]


# Replays the pickled tape argv[1]; prints the frames' and log lines' digest, and which of
# the modules argv[2] (a JSON list) were imported from something other than a .py file.
_REPLAY = """
import hashlib, json, logging, pickle, sys
from firmware.sim.tape import Replay, Tape
with open(sys.argv[1], "rb") as fh:
    rec = pickle.load(fh)
digest, counts = hashlib.sha256(), {"frames": 0, "log_lines": 0}
def frame(f):
    digest.update(repr(f).encode())
    counts["frames"] += 1
class Lines(logging.Handler):
    def emit(self, record):
        digest.update(f"{record.levelname} {record.getMessage()}".encode())
        counts["log_lines"] += 1
log = logging.getLogger("smartroller.firmware.replay")
log.addHandler(Lines())
log.setLevel(logging.DEBUG)
tape = Tape()
tape.recording = False
tape.items.extend(rec["items"])
replay = Replay(rec["config"], tape, rec["boot_id"], rec["first_seq"],
                calibration=rec["calibration"], frame_sinks=[frame])
replay.run()
compiled = {m: not sys.modules[m].__file__.endswith(".py") for m in json.loads(sys.argv[2])}
print(json.dumps(dict(counts, diverged=replay.diverged, digest=digest.hexdigest(),
                      compiled=compiled)))
"""


def _env(pythonpath: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def _replay(python: Path, tape: Path, modules: list[str], pythonpath: str | None) -> dict:
    script = tape.parent / "replay.py"
    script.write_text(_REPLAY)
    # (run from the tape's directory: the checkout on the path would shadow the build)
    done = subprocess.run([str(python), str(script), str(tape), json.dumps(modules)],
                          cwd=tape.parent, env=_env(pythonpath), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def _record(scenario: object, seed: int, seconds: float, path: Path) -> Path:
    roller = SimRoller(scenario, seed)
    roller.REPLAY_ITEMS = 10**12  # (the whole run on one tape, replayed by nobody here)
    roller.run(until=seconds)
    items = list(roller.tape.items)
    roller.tape.items.clear()
    with path.open("wb") as fh:
        pickle.dump(dict(items=items, config=roller.config, boot_id=roller.boot_id,
                         first_seq=roller.first_seq, calibration=roller.cpu.calibration), fh)
    roller.close()
    return path


@pytest.fixture(scope="module")
def compiled_build() -> None:
    """The compiled build's firmware sources are this checkout's (else: skip)."""
    where = subprocess.run([str(COMPILED_PYTHON), "-c",
                            "import firmware; print(firmware.__path__[0])"],
                           cwd="/", env=_env(), capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    built = Path(where.stdout.strip())
    ours = REPO / "firmware"
    assert built.resolve() != ours.resolve(), "the compiled Python imports this checkout"
    other = [str(p.relative_to(ours)) for p in sorted(ours.rglob("*.py"))
             if not (built / p.relative_to(ours)).exists()
             or not filecmp.cmp(p, built / p.relative_to(ours), shallow=False)]
    if other:
        pytest.skip(f"the compiled build at {built} is of other sources than this checkout "
                    f"({', '.join(other[:3])}{'...' if len(other) > 3 else ''}): "
                    "`make firmware-compiled` again")


def _faulty_bus() -> object:
    base = default_scenario()
    faults = dataclasses.replace(base.faults, nack_rate=0.01, broken_read_rate=0.005,
                                 ff_read_rate=0.002, imu_brownouts_s=[4.0],
                                 bus_hangs_s=[8.0], adc_dies_s=11.0)
    return dataclasses.replace(base, faults=faults)


def _calibrated_person() -> object:
    scenario, _ = suite(1)[0]
    return dataclasses.replace(scenario, routine=dataclasses.replace(scenario.routine,
                                                                    calibration=True))


@pytest.mark.parametrize(("name", "scenario", "seed", "seconds", "log_lines"), [
    ("person", _calibrated_person, 1, 20.0, 0),
    ("faults", _faulty_bus, 2, 14.0, 5),
])
def test_the_compiled_firmware_makes_the_pure_modules_frames_bit_for_bit(
        compiled_build, tmp_path, name, scenario, seed, seconds, log_lines):
    modules = _compiled_modules()
    tape = _record(scenario(), seed, seconds, tmp_path / f"{name}.tape")
    pure = _replay(Path(sys.executable), tape, modules, str(REPO))
    compiled = _replay(COMPILED_PYTHON, tape, modules, None)
    assert not any(pure["compiled"].values())              # the reference: the .py files
    assert all(compiled["compiled"].values()), compiled["compiled"]  # every one compiled
    assert pure["diverged"] is None and compiled["diverged"] is None  # the same bus calls
    assert pure["frames"] > 90 * seconds and pure["log_lines"] >= log_lines
    assert (compiled["frames"], compiled["log_lines"], compiled["digest"]) == \
        (pure["frames"], pure["log_lines"], pure["digest"])
