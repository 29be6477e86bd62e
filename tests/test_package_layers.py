"""The two floors of the package: the engine never imports the workflow, and no module
imports itself back through others (no import circles)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tdsnn"
ENGINE = {
    "coding", "errors", "tracing", "junctions", "folding", "prepare", "prepare_graph",
    "convert", "ops", "maxpool_solver", "snn", "testing", "paper",
}  # fmt: skip
WORKFLOW = {
    "data", "training", "pipeline", "stages", "jobs", "runfolder", "rebuild", "report",
    "plots", "cli", "cli_parser", "evaluation", "checkpoint", "distributed", "sparsity", "models",
    "summary", "files", "scales", "process", "augment",
}  # fmt: skip


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _imports(path: Path) -> set[str]:
    """The tdsnn modules ``path`` imports (relative imports resolved), at any depth."""
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            elif node.module and node.module.startswith("tdsnn"):
                name = node.module.removeprefix("tdsnn").lstrip(".")
            else:
                continue
            found.add(name)
            found.update(f"{name}.{a.name}" if name else a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("tdsnn.") for a in node.names if a.name.startswith("tdsnn"))
    files = {_module(p) for p in PACKAGE.rglob("*.py")}
    return {m.removesuffix(".__init__") for m in found if m in files or f"{m}.__init__" in files}


def test_the_engine_never_imports_the_workflow():
    for path in PACKAGE.rglob("*.py"):
        module = _module(path)
        if module.split(".")[0] not in ENGINE:
            continue
        bad = {m for m in _imports(path) if m.split(".")[0] in WORKFLOW}
        assert not bad, f"engine module {module} imports workflow modules {sorted(bad)}"


def test_every_module_is_on_one_floor():
    top = {_module(p).split(".")[0] for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert top <= ENGINE | WORKFLOW, sorted(top - ENGINE - WORKFLOW)


def test_no_import_circles():
    graph = {_module(p).removesuffix(".__init__"): _imports(p) for p in PACKAGE.rglob("*.py")}
    graph.pop("__init__", None)
    for deps in graph.values():
        deps.discard("")  # the package itself (tdsnn/__init__) re-exports; not a circle
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            if dep == node or dep not in graph:
                continue
            if state.get(dep) == 1:
                raise AssertionError("import circle: " + " -> ".join([*stack, node, dep]))
            if state.get(dep) is None:
                visit(dep, [*stack, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
