"""The import rules of docs/ARCHITECTURE.md, read from the source with ast (imports inside
functions count too, TYPE_CHECKING imports do not: they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "crowdwatch"
MAX_LINES = 450
# Packages that do one step of the chain; config/ names their strategies but imports none.
STAGES = ("sources", "detect", "track", "analytics", "outputs", "web", "tools", "cli",
          "pipeline", "app", "build")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, module: str) -> set[str]:
    """The crowdwatch modules `module` imports at run time (anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("crowdwatch"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            if base.startswith("crowdwatch"):
                for alias in node.names:  # `from pkg import module` imports pkg.module
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if candidate in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


FILES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MODULES = set(FILES)
GRAPH = {name: _imports(path, name) for name, path in FILES.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _edges(source_room: str) -> list[tuple[str, str]]:
    return [(m, dep) for m, deps in GRAPH.items() if _room(m) == source_room for dep in deps]


def test_the_graph_is_read() -> None:
    # The rules below are only as good as the parse: known imports must be seen.
    assert "crowdwatch.registry" in GRAPH["crowdwatch.detect.backends"]
    assert len(GRAPH) > 50


def test_no_import_cycle() -> None:
    # Importing a package runs its __init__: a module depends on its parents' __init__ too.
    def deps(module: str) -> set[str]:
        out = set(GRAPH.get(module, ()))
        for dep in list(out):
            parts = dep.split(".")
            out.update(".".join(parts[:i]) for i in range(2, len(parts)))
        out.discard("crowdwatch")
        out.discard(module)
        return {d for d in out if d in GRAPH and not module.startswith(d + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(deps(module)):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_config_imports_no_stage() -> None:
    bad = [(m, d) for m, d in _edges("config") if _room(d) in STAGES]
    assert not bad


def test_pipeline_does_not_import_web() -> None:
    bad = [(m, d) for m, d in _edges("pipeline") if _room(d) == "web"]
    assert not bad


@pytest.mark.parametrize(("source", "target"), [("outputs", "web"), ("web", "outputs")])
def test_outputs_and_web_do_not_import_each_other(source: str, target: str) -> None:
    bad = [(m, d) for m, d in _edges(source) if _room(d) == target]
    assert not bad


def test_no_module_is_too_long() -> None:
    long = {name: n for name, path in FILES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_config_names_are_the_registered_names() -> None:
    # config/ owns the names (Literal), each stage its registry: the two must agree.

    from crowdwatch.analytics.smoothing import SMOOTHERS
    from crowdwatch.config.app import Smoothing
    from crowdwatch.config.base import literal_names
    from crowdwatch.config.detector import Backend
    from crowdwatch.config.flow import TrackerName
    from crowdwatch.detect.backends import BACKENDS
    from crowdwatch.track import TRACKERS

    assert set(literal_names(Smoothing)) == set(SMOOTHERS.names())
    assert set(literal_names(Backend)) == {*BACKENDS.names(), "auto"}
    assert set(literal_names(TrackerName)) == set(TRACKERS.names())


# Runs the CLI in-process, then reports which heavy modules it loaded.
HELP_DRIVER = """
import sys
from crowdwatch.cli import main
sys.argv = ["crowdwatch", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("LOADED", sorted(m for m in ("cv2", "openvino", "torch", "ultralytics")
                        if m in sys.modules))
"""


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["eval", "--help"],
                                  ["bench", "--help"]])
def test_help_loads_no_heavy_module(args: list[str]) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run([sys.executable, "-c", HELP_DRIVER, *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert "Usage" in done.stdout + done.stderr
    assert "LOADED []" in done.stdout, done.stdout[-500:] + done.stderr[-500:]
