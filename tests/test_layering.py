"""Layers import one way: ``zoo`` core <- ``exporters`` <- ``compare`` <- ``zoo.cli``.

Every module under zoo/, exporters/ and compare/ is parsed with :mod:`ast` (nothing is imported)
and each ``import`` of a project module is checked against the rule:

- zoo core (all of zoo/ except the CLI layer below) imports nothing from exporters, compare or zoo.cli;
- exporters imports nothing from compare or zoo.cli;
- compare imports nothing from zoo.cli;
- the CLI layer (zoo/cli/, zoo/__main__.py, zoo/api.py if it exists) and the lazy Python API
  (function bodies in zoo/__init__.py) may import any layer.

The package root ``zoo`` (zoo/__init__.py) serves the Python API (:mod:`zoo.api`): its module-level
imports are core, but importing the root itself (``import zoo``, ``from zoo import __version__``)
is importing the API layer, so core, exporters and compare must not (``zoo.version`` holds the
version). Beside the layer rule:

- the module-level import graph has no cycle, between modules nor between packages (``zoo.hub``
  and ``zoo.weights`` are units of their own: the first two parts of a module's name);
- no module imports a private name (``from x import _y``) from another project module;
- below the CLI and the API nobody loads the catalog (``Catalog.load(...)``): it is passed down.

A function-local import of a project module usually exists to dodge an import cycle; each one
must be listed, with its reason, in :data:`FUNCTION_LOCAL_ALLOWED`, and the list must not go stale.
``zoo.backends`` names exporter and runner classes as ``"module:Class"`` strings imported on first
use: that is the table's plug-in point, not an import, and is not counted here.
"""
from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.catalog import REPO

PACKAGES = ("zoo", "exporters", "compare")
LAYERS = ("core", "exporters", "compare", "cli")
#: the layers each layer may import from
ALLOWED = {
    "core": {"core"},
    "exporters": {"core", "exporters"},
    "compare": {"core", "exporters", "compare"},
    "cli": {*LAYERS, "api"},
    "api": {*LAYERS, "api"},
}

#: (importing module, function, imported module) -> why it is function-local. Found when this test
#: was written; remove an entry when the import moves to module level.
FUNCTION_LOCAL_ALLOWED: dict[tuple[str, str, str], str] = {
    # the entry point imports the CLI with SIGINT/SIGTERM held: a Ctrl-C in the imports is one line
    ("zoo.__main__", "run", "zoo.cli"): "the CLI imported with Ctrl-C held back (zoo.__main__'s docstring)",
    # optional dependency: exporters.tflite_convert / tflite_quant import ai_edge_litert at module level
    # (litert-torch and ai-edge-quantizer on use); the adapter turns their absence into "pip install 'zoo[tflite]'"
    ("exporters.tflite", "_backend", "exporters.tflite_convert"): "optional converter (zoo[tflite]) imported on use",
    ("exporters.tflite", "_backend", "exporters.tflite_quant"): "optional converter (zoo[tflite]) imported on use",
    # zoo.models.split imports torch; reading a manifest (runtime-only processes) must not
    ("zoo.artifacts", "check_split", "zoo.models.split"): "torch only for split artifacts' manifest check",
    # on_device builds Measurements of this module: imported where a task names a device
    ("compare.measure.worker", "measure", "compare.measure.on_device"): "device measurements reuse this module's types",
    # the pipeline starts these workers, and a worker builds with a pipeline: a cycle broken in the worker
    ("exporters.isolated", "_start_worker", "exporters.pipeline"): "a worker builds with the pipeline that started it",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported project module
    line: int
    function: str | None  # qualified name of the enclosing function, None at module level
    name: str | None = None  # the name a ``from`` import takes from ``target`` (None: a module)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _collect(path: Path) -> list[Import]:
    """Every import of a project module in ``path``, with its enclosing function (if any)."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def add(target: str, node: ast.stmt, scope: list[str], in_function: bool, name: str | None = None) -> None:
        if target.split(".")[0] in PACKAGES:
            found.append(Import(module, target, node.lineno, ".".join(scope) if in_function else None, name))

    def visit(node: ast.AST, scope: list[str], in_function: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, scope, in_function)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            for alias in node.names:  # "from zoo import cli" imports the module zoo.cli
                sub = f"{base}.{alias.name}"
                if alias.name != "*" and _is_module(sub):
                    add(sub, node, scope, in_function)
                else:
                    add(base, node, scope, in_function, alias.name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = [*scope, node.name]
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, scope, in_function)

    visit(ast.parse(path.read_text(), str(path)), [], False)
    return found


def layer(module: str, function: str | None = None) -> str:
    """The layer of a module (and of a function in zoo/__init__.py: the lazy API)."""
    top = module.split(".")[0]
    if top in ("exporters", "compare"):
        return top
    if module == "zoo.cli" or module.startswith("zoo.cli.") or module in ("zoo.__main__", "zoo.api"):
        return "cli"
    if module == "zoo" and function is not None:
        return "api"
    return "core"


def _target_layer(target: str) -> str:
    """The layer an import of ``target`` reaches: the package root ``zoo`` serves the API."""
    if target == "zoo":
        return "api"
    return "cli" if target in ("zoo.api",) else layer(target)


def unit(module: str) -> str:
    """The package-level unit of a module: the first two parts of its name (``zoo.hub``,
    ``zoo.weights``, ``compare.parity``, ``exporters.onnx``)."""
    return ".".join(module.split(".")[:2])


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) through each strongly connected group of nodes in ``edges``
    (node -> {node it depends on: line}), found with Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            connect(v)
    found = []
    for group in groups:  # the shortest way from the group's first node back to itself
        start = min(group)
        paths = {start: [start]}
        queue = [start]
        while queue:
            v = queue.pop(0)
            for w in sorted(edges.get(v, {})):
                if w == start:
                    found.append([*paths[v], start])
                    queue = []
                    break
                if w in group and w not in paths:
                    paths[w] = [*paths[v], w]
                    queue.append(w)
    return sorted(found)


def import_graph(imports: list[Import], key=lambda module: module) -> dict[str, dict[str, int]]:
    """Module-level project imports as a graph of ``key(module)`` nodes (self-edges dropped)."""
    edges: dict[str, dict[str, int]] = {}
    for i in imports:
        a, b = key(i.module), key(i.target)
        if i.function is None and a != b:
            edges.setdefault(a, {}).setdefault(b, i.line)
    return edges


def describe_cycle(cycle: list[str], imports: list[Import], key=lambda module: module) -> str:
    """``a -> b -> a`` with, for each step, the first import that makes it."""
    steps = []
    for a, b in itertools.pairwise(cycle):
        i = next(i for i in imports if i.function is None and key(i.module) == a and key(i.target) == b)
        steps.append(f"{a} -> {b} ({i.module}:{i.line} imports {i.target})")
    return "; ".join(steps)


def is_private(name: str | None) -> bool:
    """``_name`` (not a dunder such as ``__version__``)."""
    return bool(name) and name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def catalog_loads(tree: ast.AST) -> list[int]:
    """Lines of ``Catalog.load(...)`` calls in a parsed module."""
    return sorted(node.lineno for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                  and isinstance(node.func.value, ast.Name) and node.func.value.id == "Catalog")




SOURCES = sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))
IMPORTS = [imp for path in SOURCES for imp in _collect(path)]


def test_sources_found() -> None:
    names = {_module_name(p) for p in SOURCES}
    assert {"zoo.backends", "zoo.artifacts", "exporters.pipeline", "compare.parity.verify", "zoo.cli"} <= names
    assert any(i.module == "exporters.pipeline" and i.target == "zoo.artifacts" for i in IMPORTS)


@pytest.mark.parametrize("lower", ["core", "exporters", "compare"])
def test_layers_import_one_way(lower: str) -> None:
    bad = [f"{i.module}:{i.line} ({i.function or 'module level'}) imports {i.target}"
           for i in IMPORTS if layer(i.module, i.function) == lower and _target_layer(i.target) not in ALLOWED[lower]]
    assert not bad, f"{lower} must import only from {sorted(ALLOWED[lower])}:\n" + "\n".join(bad)


def test_function_local_project_imports_are_listed() -> None:
    local = {(i.module, i.function, i.target): i for i in IMPORTS
             if i.function is not None and layer(i.module, i.function) != "api"}
    unlisted = [f"{m}:{i.line} {f} imports {t}" for (m, f, t), i in sorted(local.items()) if (m, f, t) not in FUNCTION_LOCAL_ALLOWED]
    stale = [key for key in FUNCTION_LOCAL_ALLOWED if key not in local]
    assert not unlisted, ("function-local imports of project modules (move them to module level, or list them in "
                          "FUNCTION_LOCAL_ALLOWED with the reason):\n" + "\n".join(unlisted))
    assert not stale, f"FUNCTION_LOCAL_ALLOWED lists imports that are gone (remove them): {stale}"
    print(f"\n{len(local)} function-local project imports: " + ", ".join(f"{m}.{f} -> {t}" for m, f, t in sorted(local)))


def test_the_checker_catches_violations(tmp_path) -> None:
    """The rule applied to made-up modules: a core module importing compare, and a function-local
    import, are both seen."""
    src = tmp_path / "mod.py"
    src.write_text("import zoo.schema\nfrom compare import comparison\n\ndef f():\n    from exporters.pipeline import Pipeline\n"
                   "class C:\n    def m(self):\n        import zoo.cli\n")
    from unittest import mock

    with mock.patch(f"{__name__}._module_name", return_value="zoo.fake"):
        found = _collect(src)
    assert [(i.target, i.function) for i in found] == [
        ("zoo.schema", None), ("compare.comparison", None), ("exporters.pipeline", "f"), ("zoo.cli", "C.m")]
    assert [layer(i.module, i.function) for i in found] == ["core"] * 4
    assert [_target_layer(i.target) in ALLOWED["core"] for i in found] == [True, False, False, False]


def test_no_layer_below_the_api_imports_the_package_root() -> None:
    """``import zoo`` / ``from zoo import x`` runs the package root that serves :mod:`zoo.api`;
    the layer rule above counts it as the API layer: here, its module-level imports are core."""
    bad = [f"{i.module}:{i.line} imports the package root zoo" for i in IMPORTS
           if i.target == "zoo" and layer(i.module, i.function) in ("core", "exporters", "compare")]
    assert not bad, "import zoo.version (or the module that defines the name) instead:\n" + "\n".join(bad)
    root = [i for i in IMPORTS if i.module == "zoo" and i.function is None]
    assert "zoo.version" in {i.target for i in root} and all(layer(i.module, i.function) == "core" for i in root)


@pytest.mark.parametrize("level", ["module", "package"])
def test_module_level_imports_have_no_cycle(level: str) -> None:
    key = (lambda m: m) if level == "module" else unit
    found = cycles(import_graph(IMPORTS, key))
    assert not found, f"{level}-level import cycles:\n" + "\n".join(describe_cycle(c, IMPORTS, key) for c in found)


def test_no_private_name_is_imported_from_another_module() -> None:
    bad = [f"{i.module}:{i.line} imports {i.name} from {i.target}" for i in IMPORTS if is_private(i.name)]
    assert not bad, "private names imported from another project module (make them public):\n" + "\n".join(bad)


def test_the_catalog_is_loaded_only_by_the_cli_and_the_api() -> None:
    loads = {}
    for path in SOURCES:
        module = _module_name(path)
        lines = catalog_loads(ast.parse(path.read_text(), str(path)))
        if lines and layer(module) in ("core", "exporters", "compare"):
            loads[module] = lines
    below = [f"{m}:{lines}" for m, lines in sorted(loads.items())]
    assert not below, "Catalog.load() below the CLI / API (take the catalog as an argument):\n" + "\n".join(below)


def test_the_cycle_private_and_catalog_checks_catch_violations(tmp_path) -> None:
    """Made-up modules: the package root imported from core, a module and a package cycle, a
    private name imported, a Catalog.load call."""
    from unittest import mock

    src = tmp_path / "mod.py"
    src.write_text("import zoo\nfrom zoo import __version__\nfrom zoo.version import __version__ as v\n"
                   "from zoo.hub.fetch import fetch_weights, _private\nfrom zoo import cli\n")
    with mock.patch(f"{__name__}._module_name", return_value="zoo.fake"):
        found = _collect(src)
    assert [(i.target, i.name) for i in found] == [
        ("zoo", None), ("zoo", "__version__"), ("zoo.version", "__version__"), ("zoo.hub.fetch", "fetch_weights"),
        ("zoo.hub.fetch", "_private"), ("zoo.cli", None)]
    assert [_target_layer(i.target) in ALLOWED["core"] for i in found] == [False, False, True, True, True, False]
    assert [is_private(i.name) for i in found] == [False, False, False, False, True, False]

    def imp(module: str, target: str, function: str | None = None) -> Import:
        return Import(module, target, 1, function)

    fake = [imp("zoo.a", "zoo.b"), imp("zoo.b", "zoo.c"), imp("zoo.c", "zoo.a"), imp("zoo.c", "zoo.d"),
            imp("zoo.d", "zoo.c", "f")]  # function-local: not a module-level cycle
    assert cycles(import_graph(fake)) == [["zoo.a", "zoo.b", "zoo.c", "zoo.a"]]
    assert "zoo.c -> zoo.a (zoo.c:1 imports zoo.a)" in describe_cycle(["zoo.a", "zoo.b", "zoo.c", "zoo.a"], fake)
    packages = [imp("zoo.weights", "zoo.hub.fetch"), imp("zoo.hub.publish", "zoo.weights"), imp("zoo.hub.fetch", "zoo.hub.store")]
    assert cycles(import_graph(packages)) == []  # no module cycle ...
    assert cycles(import_graph(packages, unit)) == [["zoo.hub", "zoo.weights", "zoo.hub"]]  # ... but a package one

    tree = ast.parse("from zoo.catalog import Catalog\nc = Catalog.load()\ndef f(p):\n    return Catalog.load(p).preset('x')\n"
                     "x = catalog.load()\ny = Catalog.loads()\n")
    assert catalog_loads(tree) == [2, 4]


def test_a_runtime_measurement_process_does_not_import_torch() -> None:
    """Every timing, bench and tracking child of a non-PyTorch runtime starts from these imports;
    torch (about 2 s per process) is loaded only by the PyTorch reference runner."""
    import subprocess
    import sys

    from zoo.backends import BACKENDS

    runners = [b.runner.split(":")[0] for b in BACKENDS]
    code = f"import sys, compare.measure.worker, compare.tracking.tracker, {', '.join(runners)}; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


#: compare's rooms, bottom first: a room imports only rooms before it (the three side-by-side rooms
#: measure, diagnose and tracking import none of each other)
COMPARE_ROOMS = (("compare.runners",), ("compare.devices",), ("compare.inputs",), ("compare.parity",), ("compare.provision",),
                 ("compare.measure", "compare.diagnose", "compare.tracking"), ("compare.comparison",), ("compare.decision",))


def room(module: str) -> int | None:
    """The rank of ``module``'s room in :data:`COMPARE_ROOMS` (None outside compare's rooms)."""
    for rank, rooms in enumerate(COMPARE_ROOMS):
        if any(module == r or module.startswith(r + ".") for r in rooms):
            return rank
    return None


def _room_name(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_compare_rooms_import_one_way() -> None:
    bad = [f"{i.module}:{i.line} imports {i.target}" for i in IMPORTS
           if room(i.module) is not None and room(i.target) is not None and _room_name(i.module) != _room_name(i.target)
           and room(i.target) >= room(i.module)]
    assert not bad, "compare's rooms import one way (runners <- devices <- inputs <- parity <- provision <- measure | diagnose | tracking <- comparison <- decision):\n" + "\n".join(bad)


def test_every_compare_module_is_in_a_room() -> None:
    homeless = sorted({_module_name(p) for p in SOURCES if _module_name(p).startswith("compare.") and room(_module_name(p)) is None})
    assert not homeless, f"compare modules outside the rooms of COMPARE_ROOMS (add them or move them): {homeless}"


def test_a_room_importing_a_later_room_is_caught() -> None:
    assert room("compare.parity.verify") < room("compare.provision") < room("compare.tracking.tracker")
    assert room("compare.measure.worker") == room("compare.diagnose.layers") and room("zoo.artifacts") is None
