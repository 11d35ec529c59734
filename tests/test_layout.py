"""The package's import structure: no two modules import each other (at module level or inside
a function), and the schema package (``maml_hydra.config``) imports neither the task families
nor torch, so that a config error answers before either is loaded."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "maml_hydra"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it: functions and ``TYPE_CHECKING`` blocks
    included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import mod`
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports(path) & set(modules) - {name} for name, path in modules.items()}


def test_no_two_modules_import_each_other():
    edges = graph()
    pairs = sorted(
        (a, b) for a, targets in edges.items() for b in targets if a < b and a in edges.get(b, ())
    )
    # a package and its own modules are one unit: the package re-exports them
    pairs = [(a, b) for a, b in pairs if not (b.startswith(a + ".") or a.startswith(b + "."))]
    assert pairs == []


def test_the_schemas_import_neither_the_task_families_nor_torch():
    for path in (PACKAGE / "config").glob("*.py"):
        found = imports(path)
        assert not any(m == "torch" or m.startswith("torch.") for m in found), path
        assert not any(m.startswith("maml_hydra.tasks") for m in found), path
        assert not any(
            m.startswith("maml_hydra.") and not m.startswith("maml_hydra.config") for m in found
        ), path  # only its own modules
