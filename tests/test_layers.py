"""The import direction, pinned: data flows one way and no module reaches back up.

Every module of the package sits in a layer (`../shared/DESIGN.md`); a module
may import its own layer and those below, never above, and the graph of
imports (module-level and inside functions alike) has no circle. Keras is
imported by the adapter (the only user of `keras.src`), the dataset and the
modules above it; nothing below `dataset` imports the dataset, the adapter or
Keras. Imports for type hints only (`if TYPE_CHECKING:`) do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "keras_roi_datagen"

# Layer of each module (a package stands for all its modules). Old names kept for a
# release (shims) sit with the module they point to.
LAYERS = {
    "errors": 0, "options": 0,
    "augment": 1, "labels": 1, "boxes": 1, "storage": 1, "paths": 1, "mapped": 1,
    "demo": 1, "sharding": 1, "permutation": 1, "progress": 1,
    "decode": 2, "splitting": 2, "imaging": 2, "jpeg_region": 2, "planning": 2, "formats": 2,
    "csv_columns": 2, "coco_columns": 2, "about": 2,
    "index": 3, "index_cache": 3, "index_columns": 3, "workers": 3, "worker": 3,
    "batching": 4, "summary": 4, "state": 4,
    "adapter": 5, "validation": 5, "preview": 5, "cache": 5, "decode_workers": 5,
    "dataset": 6,
    "callbacks": 7, "datamodule": 7, "cli": 7, "__main__": 7, "__init__": 8,
}
KERAS_USERS = {"adapter", "dataset", "callbacks"}
BACKENDS = ("keras", "tensorflow", "jax", "torch")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts)] = path
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def _imports(path: Path) -> set[str]:
    """Every module of the package and every backend that `path` imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # names imported for type hints only are no imports
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING",
                                                                   "typing.TYPE_CHECKING"):
            node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: the package imports absolutely"
            base = node.module or ""
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.startswith("keras_roi_datagen."):
                found.add(target[len("keras_roi_datagen."):])
            elif target.split(".")[0] in BACKENDS:
                found.add(target)
    return found


def _package_modules(imported: set[str], modules: dict[str, Path]) -> set[str]:
    return {m for m in imported if m in modules or m + ".__init__" in modules}


MODULES = _modules()


def test_every_module_has_a_layer() -> None:
    missing = sorted({_top(m) for m in MODULES} - set(LAYERS))
    assert not missing, f"give these modules a layer in tests/test_layers.py: {missing}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_down_only(name: str) -> None:
    layer = LAYERS[_top(name)]
    imported = _imports(MODULES[name])
    upward = sorted(m for m in _package_modules(imported, MODULES)
                    if LAYERS.get(_top(m), -1) > layer)
    assert not upward, f"{name} (layer {layer}) imports from above: {upward}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_the_adapter_and_above_import_keras(name: str) -> None:
    imported = _imports(MODULES[name])
    if _top(name) not in KERAS_USERS and LAYERS[_top(name)] < LAYERS["dataset"]:
        assert not {m for m in imported if m.split(".")[0] == "keras"}, f"{name} imports Keras"
    if _top(name) != "adapter":
        assert not {m for m in imported if m.startswith("keras.src")}, f"{name} imports keras.src"


def test_the_lower_layers_name_neither_the_dataset_nor_the_batch_side() -> None:
    lower = [m for m in MODULES if _top(m) in ("index", "decode", "planning", "formats", "augment")]
    for name in lower:
        imported = _package_modules(_imports(MODULES[name]), MODULES)
        assert not {m for m in imported if _top(m) in ("dataset", "adapter", "batching")}, name


def test_there_is_no_import_circle() -> None:
    graph = {name: {m for m in _package_modules(_imports(path), MODULES)
                    if m in MODULES and m != name}
             for name, path in MODULES.items()}
    # A package's __init__ re-exports its modules; importing the package is not a circle.
    for name in list(graph):
        graph[name] = {m for m in graph[name] if not (m.endswith("__init__")
                                                      or m + ".__init__" in MODULES)}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circle = [*path[path.index(target):], target]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
