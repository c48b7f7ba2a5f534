"""The one direction of imports (docs/architecture.md), checked on the source.

Product code never imports the simulator or the bench; the host takes only the
firmware's published interface; each host package imports only the packages below it:

    paths, timefmt -> stream, clock, ble (link) -> analysis -> store -> export -> daemon
    -> dashboard -> cli
    -> bench (on top of everything, nothing below importing it)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SIMULATION_USERS = {"host/cli/demo.py", "host/cli/bench.py", "firmware/cli.py",
                    "firmware/ble/simcli.py"}
"""Commands that run the simulator on purpose: the demo, the bench command (which may
also import the bench) and the firmware's ``sim`` commands (each imports it inside the
command that needs it)."""

FIRMWARE_INTERFACE = ("firmware.protocol", "firmware.schema")
"""What the host's product modules may import of the firmware."""

HOST_LAYERS = (
    ("host.paths", "host.timefmt"),
    ("host.stream", "host.clock", "host.ble"),
    ("host.analysis",),
    ("host.store",),
    ("host.export",),
    ("host.daemon",),
    ("host.dashboard",),
    ("host.cli",),
    ("host.bench",),
)
"""Host packages from the bottom up: a module may import its own layer and those below."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (absolute names;
    relative imports resolved against ``path``'s package under ``root``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parts = list(path.relative_to(root).with_suffix("").parts)
    package = parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _layer(name: str) -> int | None:
    for rank, packages in enumerate(HOST_LAYERS):
        if any(_under(name, p) for p in packages):
            return rank
    return None


def _sources(top: str) -> list[Path]:
    return sorted((ROOT / top).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _product(path: Path) -> bool:
    rel = _rel(path)
    return not rel.startswith(("host/bench/", "firmware/sim/")) and rel not in SIMULATION_USERS


def test_every_host_module_has_a_layer():
    for path in _sources("host"):
        name = _module_name(path)
        if name != "host":
            assert _layer(name) is not None, f"{_rel(path)}: add it to HOST_LAYERS"


@pytest.mark.parametrize("path", [p for p in _sources("host") + _sources("firmware")
                                  if _product(p)], ids=_rel)
def test_product_code_imports_neither_the_simulator_nor_the_bench(path):
    bad = sorted(n for n in _imports(path) if _under(n, "firmware.sim") or _under(n, "host.bench"))
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("path", [p for p in _sources("host") if _product(p)], ids=_rel)
def test_the_host_takes_only_the_firmwares_published_interface(path):
    bad = sorted(n for n in _imports(path) if _under(n, "firmware")
                 and not any(_under(n, p) for p in FIRMWARE_INTERFACE) and n != "firmware")
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("path", _sources("firmware"), ids=_rel)
def test_the_firmware_never_imports_the_host(path):
    bad = sorted(n for n in _imports(path) if _under(n, "host"))
    assert not bad, f"{_rel(path)} imports {bad}"


@pytest.mark.parametrize("path", _sources("host"), ids=_rel)
def test_host_imports_point_down(path):
    own = _layer(_module_name(path))
    if own is None:
        return
    allowed = ("host.bench",) if _rel(path) in SIMULATION_USERS else ()
    bad = sorted(n for n in _imports(path) if (r := _layer(n)) is not None and r > own
                 and not any(_under(n, a) for a in allowed))
    assert not bad, f"{_rel(path)} (layer {HOST_LAYERS[own]}) imports {bad} from above"


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    module = tmp_path / "host" / "store" / "leak.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from firmware.sim.rig import SimRoller\n"
                      "    from ..bench import suite\n    import host.cli.main\n")
    found = _imports(module, tmp_path)
    assert {"firmware.sim.rig", "host.bench.suite", "host.cli.main"} <= found
    assert _layer("host.bench.suite") > _layer("host.store.leak")
