"""The package's structure: module-level imports form no cycle, and the layers point down."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vlfast

PACKAGE = Path(vlfast.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, everywhere: bool = False) -> set[str]:
    """The vlfast modules ``path`` imports when it is imported, or anywhere (inside functions too)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree) if everywhere else tree.body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.startswith("vlfast"):
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("vlfast"))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycles() -> None:
    graph = import_graph()
    # Importing a package's submodule runs the package first: edges into a package's own children
    # from its __init__ are the package's definition, not a cycle.
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if node.startswith(target + ".") or target.startswith(node + "."):
                continue
            if state.get(target) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*path[path.index(target):], target])}")
            if target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


#: Lower layers never import these (at module level or at all): the engines know nothing of the
#: entry points, the transformers glue or the command line.
UPPER = {
    "vlfast.engines": ("vlfast.pipeline", "vlfast.preprocess", "vlfast.video", "vlfast.hf", "vlfast.processor"),
    "vlfast.kernels": ("vlfast.engines", "vlfast.pipeline", "vlfast.preprocess", "vlfast.hf"),
    "vlfast.pipeline": (
        "vlfast.preprocess",
        "vlfast.video",
        "vlfast.hf",
        "vlfast.processor",
        "vlfast.cli",
        "vlfast.integrations",
    ),
    "vlfast.preprocess": ("vlfast.video", "vlfast.hf", "vlfast.processor", "vlfast.cli", "vlfast.integrations"),
    "vlfast.video": ("vlfast.hf", "vlfast.processor", "vlfast.cli", "vlfast.integrations"),
    "vlfast.hf": ("vlfast.cli", "vlfast.benchmarking", "vlfast.integrations"),
    # Decoding many sources: below the entry points that call it.
    "vlfast.loader": ("vlfast.pipeline", "vlfast.preprocess", "vlfast.video", "vlfast.hf", "vlfast.cli"),
    # Shards of a folder: under the command line that calls it.
    "vlfast.shards": ("vlfast.cli", "vlfast.integrations"),
    # Data pipelines and serving hand-offs: on top of the public API, below the command line.
    "vlfast.integrations": ("vlfast.cli", "vlfast.benchmarking"),
}


def test_layers_point_down() -> None:
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        for layer, forbidden in UPPER.items():
            if name == layer or name.startswith(layer + "."):
                bad = sorted(m for m in _imports(path, everywhere=True) if m.startswith(forbidden))
                assert not bad, f"{name} (layer {layer}) imports {bad}"



def test_benchmark_engine_stays_out_of_the_runtime_imports() -> None:
    # Only ``vlfast bench`` (inside its handler) and the scripts in bench/ load vlfast.benchmarking.
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        if name != "vlfast.benchmarking":
            assert "vlfast.benchmarking" not in _imports(path), f"{name} imports vlfast.benchmarking when imported"


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(result.stdout.split())


def test_import_vlfast_and_the_cli_stay_light() -> None:
    # ``import vlfast`` loads no transformers; the CLI's module adds no benchmark engine and no plotting.
    for statement in ("import vlfast", "import vlfast.cli"):
        loaded = _modules_loaded_by(statement)
        heavy = sorted(m for m in loaded if m.split(".")[0] in {"transformers", "matplotlib", "requests"})
        assert not heavy, f"{statement!r} loads {heavy[:5]}"
        assert "vlfast.benchmarking" not in loaded, f"{statement!r} loads vlfast.benchmarking"
