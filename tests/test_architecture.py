"""Who may import whom, checked over the real imports of every module (docs/architecture.md draws the same table).

Each top-level part of `adytum` lists the other parts it may import; an import outside its list fails here,
naming the file and the line. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "adytum"

BOTTOM = {"adytum.errors"}
#: part -> the parts it may import (besides itself and `adytum.errors`, which anything may import).
ALLOWED: dict[str, set[str]] = {
    "adytum": {"adytum.client", "adytum.protocol", "adytum.workloads"},  # the public face, resolved on first use
    "adytum.errors": set(),
    "adytum.files": set(),
    "adytum.crypto": set(),
    "adytum.ledger": {"adytum.crypto", "adytum.protocol"},
    "adytum.protocol": {"adytum.crypto"},
    "adytum.channel": set(),
    "adytum.datadir": {"adytum.files"},
    "adytum.config": set(),
    "adytum.attestation": {"adytum.files"},
    "adytum.issuer": {"adytum.attestation", "adytum.files", "adytum.datadir"},
    "adytum.workloads": {"adytum.protocol", "adytum.attestation", "adytum.datadir"},
    "adytum.enclave": {
        "adytum.crypto",
        "adytum.protocol",
        "adytum.workloads",
        "adytum.attestation",
        "adytum.issuer.quoter",
        "adytum.channel",
        "adytum.datadir",
        "adytum.files",
        "adytum.ledger",
    },
    "adytum.store": {"adytum.protocol", "adytum.ledger"},
    "adytum.operator": {"adytum.crypto", "adytum.datadir", "adytum.files"},
    "adytum.manager": {
        "adytum.config",
        "adytum.crypto",
        "adytum.protocol",
        "adytum.store",
        "adytum.attestation",
        "adytum.channel",
        "adytum.datadir",
        "adytum.files",
        "adytum.workloads",
        "adytum.ledger",
    },
    "adytum.listener": {
        "adytum.protocol",
        "adytum.store",
        "adytum.crypto",
        "adytum.operator",
        "adytum.config",
        "adytum.ledger",
    },
    "adytum.client": {
        "adytum.crypto",
        "adytum.protocol",
        "adytum.attestation",
        "adytum.operator",
        "adytum.config",
        "adytum.ledger",
    },
    "adytum.chain": {
        "adytum.crypto",
        "adytum.protocol",
        "adytum.store",
        "adytum.client",
        "adytum.config",
    },
    "adytum.node": {
        "adytum.chain",
        "adytum.config",
        "adytum.store",
        "adytum.manager",
        "adytum.listener",
        "adytum.operator",
        "adytum.issuer",
        "adytum.datadir",
    },
    "adytum.logs": set(),
    "adytum.cli": {"*"},  # the entry point may use everything
    "adytum.__main__": {"adytum.cli"},
}
#: Parts nothing else may import.
ENTRY_POINTS = {"adytum.cli"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every adytum import in the file, relative ones resolved."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "adytum"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "adytum":
                continue
            if target == "adytum" or (node.module is None):  # `from .. import crypto`: the names are modules
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def _part(module: str) -> str:
    """The part a module belongs to: `adytum.manager.pool` -> `adytum.manager`; `adytum.__version__` -> `adytum`."""
    parts = module.split(".")
    if len(parts) == 1:
        return module
    candidate = ".".join(parts[:2])
    return candidate if (PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file() else "adytum"


def _allowed(source: str, target: str) -> bool:
    allowed = ALLOWED[_part(source)]
    if target == "adytum.__version__":
        return True
    if "*" in allowed or _part(target) in BOTTOM | {_part(source)}:
        return True
    return any(target == a or target.startswith(a + ".") for a in allowed)


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_a_rule() -> None:
    parts = {_part(_module_name(f)) for f in FILES}
    assert parts <= set(ALLOWED), f"parts without an import rule: {sorted(parts - set(ALLOWED))}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layering(path: Path) -> None:
    source = _module_name(path)
    wrong = [
        f"{path.relative_to(SRC)}:{line} imports {target}"
        for line, target in _imports(path)
        if not _allowed(source, target)
        or (_part(target) in ENTRY_POINTS and _part(source) not in {_part(target), "adytum.__main__"})
    ]
    assert not wrong, "imports across the layering rules:\n" + "\n".join(wrong)


def test_no_cycles_between_parts() -> None:
    graph: dict[str, set[str]] = {}
    for path in FILES:
        source = _part(_module_name(path))
        if source in ("adytum", "adytum.cli", "adytum.__main__"):
            continue
        graph.setdefault(source, set()).update(
            _part(t) for _, t in _imports(path) if _part(t) not in (source, "adytum")
        )

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(node) :] + [node]))
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, trail + [node])

    for start in sorted(graph):
        visit(start, [])


def test_the_rules_catch_a_violation(tmp_path: Path) -> None:
    """The checker itself: a listener module importing the manager is caught."""
    assert not _allowed("adytum.listener.methods", "adytum.manager")
    assert not _allowed("adytum.enclave.service", "adytum.store")
    assert not _allowed("adytum.client.client", "adytum.issuer.service")
    assert _allowed("adytum.enclave.service", "adytum.issuer.quoter")
