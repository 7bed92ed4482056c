"""Rules over the sources of zoo, exporters and compare: each rule (IoU, layouts, machine info, the
export progress callback, the per-frame loop) has one definition, and its callers use it; names
live in their home module (native_quiet, the input roles, the optional-package helpers, the
OpenCV affine tolerance); removed fields and functions stay removed."""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from tests.helpers.catalog import REPO

SOURCES = sorted(p for pkg in ("zoo", "compare", "exporters") for p in (REPO / pkg).rglob("*.py"))


def _defs(name: str) -> list[str]:
    """Modules defining a function ``name`` at module level or in a function (not as a method)."""
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        methods = {id(f) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body}
        if any(isinstance(n, ast.FunctionDef) and n.name == name and id(n) not in methods for n in ast.walk(tree)):
            found.append(str(path.relative_to(REPO)))
    return found


@pytest.mark.parametrize(("name", "home"), [
    ("iou", ["zoo/evaluation/metrics.py"]), ("iou_xywh", []),
    ("to_layout", ["zoo/layouts.py"]), ("_expected_shape", []),
    ("machine_info", ["compare/measure/machine.py"]),
    ("on_event", ["zoo/cli/output.py"]),  # export_reporter's callback
    ("track_sequence", ["compare/tracking/tracker.py"]),
])
def test_each_rule_is_defined_once(name, home) -> None:
    assert _defs(name) == home


def test_no_layout_permutation_outside_its_home() -> None:
    """NCHW <-> NHWC axes are written in zoo/layouts.py only (zoo/models' torch token reshapes
    are the network's own arithmetic, not a tensor layout)."""
    perm = re.compile(r"\(\s*0,\s*2,\s*3,\s*1\s*\)|\(\s*0,\s*3,\s*1,\s*2\s*\)|\[\s*0,\s*3,\s*1,\s*2\s*\]")
    offenders = [str(p.relative_to(REPO)) for p in SOURCES
                 if perm.search(p.read_text()) and p.name != "layouts.py" and "models" not in p.parts]
    assert offenders == []


def test_native_quiet_lives_in_the_bottom_layer() -> None:
    from compare.runners import native_quiet as from_runners
    from zoo.native import native_quiet

    assert from_runners is native_quiet
    tree = ast.parse((REPO / "exporters" / "tflite_convert.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
               {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.split(".")[0] == "compare" for m in imported), imported


def test_unused_fields_and_aliases_do_not_exist() -> None:
    from compare import inputs
    from compare.measure.worker import Measurement
    from zoo.hub.download import Outcome

    assert "attempts" not in {f.name for f in dataclasses.fields(Outcome)}
    assert "os_threads" not in {f.name for f in dataclasses.fields(Measurement)}
    assert not hasattr(inputs, "default_pairs")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return ({n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names})


def test_no_unused_reader_and_no_copied_tolerance() -> None:
    """Dead names removed, the input roles and the optional-package helpers in core
    modules of their own, the OpenCV affine tolerance defined once."""
    import zoo
    from compare.tracking import evaluation
    from exporters import base, opencv_probe
    from zoo import io_roles, requirements, sample_inputs, version

    assert zoo.__version__ == version.__version__
    assert not {"_input_roles", "role_inputs"} & set(vars(sample_inputs))
    assert sample_inputs.input_roles is io_roles.input_roles  # used there, defined in zoo.io_roles
    assert callable(io_roles.role_inputs)
    assert not hasattr(evaluation, "read_run")
    assert base.MissingPackage is requirements.MissingPackage and not hasattr(base, "require")  # used there, defined in core
    assert issubclass(requirements.MissingPackage, zoo.errors.ZooError)
    with pytest.raises(requirements.MissingPackage, match=r"pip install 'zoo\[onnx\]'"):
        base.package_version("no-such-distribution-zoo", "onnx")
    # the runtime layer takes nothing from the export layer
    for path in sorted((REPO / "compare" / "runners").glob("*.py")):
        assert not any(m.split(".")[0] == "exporters" for m in _imported_modules(path)), path
    # exporters.opencv checks the measured affine against the probe's constant, not a copy of it
    src = (REPO / "exporters" / "opencv.py").read_text()
    assert opencv_probe.AFFINE_TOLERANCE == 1e-4 and "1e-4" not in src
    assert any(isinstance(n, ast.Name) and n.id == "AFFINE_TOLERANCE" for n in ast.walk(ast.parse(src)))


def _markup_safe(node: ast.expr) -> bool:
    """A string rich may read as markup without harm: a literal, ``escape(...)``/``Text(...)``/a
    table, or an f-string whose every interpolation is one of those."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Call):
        func = node.func
        return (func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")) in {"escape", "Text", "rich_table"}
    if isinstance(node, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) or (isinstance(v, ast.FormattedValue) and _markup_safe(v.value)) for v in node.values)
    return False


def test_the_cli_prints_what_it_is_given_as_text() -> None:
    """Paths and names hold square brackets (``clip[final].mp4``, ``[/]=DIR``): every console
    print of the CLI passes ``markup=False`` or escapes what it interpolates (table titles,
    headers and progress descriptions are plain text in zoo/cli/output.py)."""
    offenders = []
    for path in sorted((REPO / "zoo" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "print" and node.args):
                continue
            markup = {k.arg: k.value for k in node.keywords}.get("markup")
            if not (isinstance(markup, ast.Constant) and markup.value is False) and not _markup_safe(node.args[0]):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_outputs_are_written_by_the_one_output_rule() -> None:
    """Files a command is asked to write go through zoo.fileio (atomic_path / atomic_write_bytes:
    devices and FIFOs written through, symlinks followed, nothing special replaced): no
    temporary-and-rename of its own in the CLI, and every figure is saved inside ``atomic_path``."""
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        guarded = {item.optional_vars.id for n in ast.walk(tree) if isinstance(n, ast.With) for item in n.items
                   if isinstance(item.context_expr, ast.Call) and getattr(item.context_expr.func, "id", "") == "atomic_path"
                   and isinstance(item.optional_vars, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "savefig":
                assert isinstance(node.args[0], ast.Name) and node.args[0].id in guarded, f"{path}:{node.lineno}"
        if "cli" in path.parts or path.name == "videofile.py":
            text = path.read_text()
            assert "os.replace" not in text and "mkstemp" not in text, path
