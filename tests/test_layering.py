"""Layers import one way (issue 11): ``zoo`` core <- ``exporters`` <- ``compare`` <- ``zoo.cli``.

Every module under zoo/, exporters/ and compare/ is parsed with :mod:`ast` (nothing is imported)
and each ``import`` of a project module is checked against the rule:

- zoo core (all of zoo/ except the CLI layer below) imports nothing from exporters, compare or zoo.cli;
- exporters imports nothing from compare or zoo.cli;
- compare imports nothing from zoo.cli;
- the CLI layer (zoo/cli/, zoo/__main__.py, zoo/api.py if it exists) and the lazy Python API
  (function bodies in zoo/__init__.py) may import any layer.

A function-local import of a project module usually exists to dodge an import cycle; each one
must be listed, with its reason, in :data:`FUNCTION_LOCAL_ALLOWED`, and the list must not go stale.
``zoo.backends`` names exporter and runner classes as ``"module:Class"`` strings imported on first
use: that is the table's plug-in point, not an import, and is not counted here.
"""
from __future__ import annotations

import ast
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
    "cli": set(LAYERS),
    "api": set(LAYERS),
}

#: (importing module, function, imported module) -> why it is function-local. Found when this test
#: was written (issue 11); remove an entry when the import moves to module level.
FUNCTION_LOCAL_ALLOWED: dict[tuple[str, str, str], str] = {
    # optional dependency: exporters.tflite_convert imports onnx2tf / tensorflow / ai_edge_litert at
    # module level; the adapter turns their absence into "pip install 'zoo[tflite]'"
    ("exporters.tflite", "_backend", "exporters.tflite_convert"): "optional converter (zoo[tflite]) imported on use",
    # the int8 path imports exporters.tflite_convert (hence TensorFlow) at module level, like it
    ("exporters.tflite", "_quant_backend", "exporters.tflite_quant"): "optional converter (zoo[tflite]) imported on use",
    # zoo.models.split imports torch; reading a manifest (runtime-only processes) must not
    ("zoo.artifacts", "check_split", "zoo.models.split"): "torch only for split artifacts' manifest check",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported project module
    line: int
    function: str | None  # qualified name of the enclosing function, None at module level


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

    def add(target: str, node: ast.stmt, scope: list[str], in_function: bool) -> None:
        if target.split(".")[0] in PACKAGES:
            found.append(Import(module, target, node.lineno, ".".join(scope) if in_function else None))

    def visit(node: ast.AST, scope: list[str], in_function: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, scope, in_function)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            for alias in node.names:  # "from zoo import cli" imports the module zoo.cli
                sub = f"{base}.{alias.name}"
                add(sub if alias.name != "*" and _is_module(sub) else base, node, scope, in_function)
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
    return "cli" if target in ("zoo.api",) else layer(target)


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
