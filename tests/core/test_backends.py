"""The backend table (zoo/backends.py) is the one declaration of every format and runtime: the
catalog schema, the catalog's tolerances, the CLI's choices and help texts, the pip extras and
the exporter / runner classes must all agree with it. Fast: no export, no runtime loaded."""
from __future__ import annotations

import re
import tomllib
import typing

import pytest
from click.testing import CliRunner

from compare.diagnose.profile import check_request
from compare.provision import choose_runtimes
from compare.runners.base import ArtifactRunner
from exporters import get_exporter
from exporters.base import Exporter
from tests.helpers.catalog import CATALOG, REPO
from zoo import backends
from zoo.artifacts import ArtifactKey
from zoo.backends import BACKENDS, FORMATS, PRECISIONS, PROFILED_RUNTIMES, REFERENCE_RUNTIME, RUNTIMES, by_format, by_runtime, offered
from zoo.cli import cli
from zoo.errors import UsageError
from zoo.schema import Format, Precision, Variant

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _help(*command: str) -> str:
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # click wraps help text: compare on single spaces


# -- the table itself ------------------------------------------------------------------------------
def test_table_is_consistent() -> None:
    assert FORMATS == tuple(b.format for b in BACKENDS) and FORMATS[0] == "onnx"  # ONNX first: the rest convert from it
    assert len(set(FORMATS)) == len(FORMATS) and len(set(RUNTIMES)) == len(RUNTIMES) == len(BACKENDS)
    assert REFERENCE_RUNTIME == "pytorch" and REFERENCE_RUNTIME not in RUNTIMES and REFERENCE_RUNTIME not in FORMATS
    assert PRECISIONS[0] == "fp32" and set(PRECISIONS) == {p for b in BACKENDS for p in b.precisions}
    assert PROFILED_RUNTIMES == tuple(b.runtime for b in BACKENDS if b.profiles)
    for b in BACKENDS:
        assert by_format(b.format) is b and by_runtime(b.runtime) is b and offered(b.format) == b.precisions
        assert b.precisions[0] == "fp32" and len(set(b.precisions)) == len(b.precisions)
        assert b.suffixes and all(s.startswith(".") for s in b.suffixes) and len(set(b.suffixes)) == len(b.suffixes)
        assert b.needs_onnx == (b.format not in ("onnx", "tflite", "executorch"))  # these convert the PyTorch module
        assert b.title and b.extra
        assert ArtifactKey("v", b.format).dirname == b.format
        assert all(ArtifactKey("v", b.format, p).dirname == f"{b.format}-{p}" for p in b.precisions[1:])
    with pytest.raises(KeyError):
        by_format("pytorch")


def test_table_is_immutable() -> None:
    with pytest.raises(Exception):
        BACKENDS[0].format = "x"  # frozen dataclass
    assert isinstance(BACKENDS, tuple)


# -- exporter and runner classes ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_exporter_class_declares_its_format(fmt: str) -> None:
    b = by_format(fmt)
    cls = b.exporter_class()
    assert isinstance(cls, type) and issubclass(cls, Exporter) and cls.name == fmt
    assert cls.__module__ == b.exporter.split(":")[0] == f"exporters.{fmt}"
    exporter = get_exporter(fmt)
    assert type(exporter) is cls
    assert (exporter.precisions, exporter.extra, exporter.needs_onnx) == (b.precisions, b.extra, b.needs_onnx)


@pytest.mark.parametrize("fmt", FORMATS)
def test_runner_class_declares_its_format(fmt: str) -> None:
    b = by_format(fmt)
    cls = b.runner_class()
    assert isinstance(cls, type) and issubclass(cls, ArtifactRunner) and cls.format == fmt
    assert cls.__module__ == b.runner.split(":")[0] == f"compare.runners.{b.runtime}"
    # the profiler hook exists exactly where the table says zoo profile can time ops
    assert (cls.profiler is not ArtifactRunner.profiler) == b.profiles
    # and the tensor tap exactly where zoo compare --layers can compare layers
    assert (cls.tensor_tap is not ArtifactRunner.tensor_tap) == b.taps


# -- the catalog schema and the catalog ---------------------------------------------------------------
def test_schema_literals_are_the_table() -> None:
    assert typing.get_args(Format) == FORMATS
    assert typing.get_args(Precision) == PRECISIONS
    tolerances = Variant.model_fields["tolerances"].annotation
    key, inner = typing.get_args(tolerances)
    assert key is Format and typing.get_args(inner)[0] is Precision


def test_every_variant_has_a_tolerance_for_every_offered_target() -> None:
    for v in CATALOG:
        assert set(v.tolerances) == set(FORMATS), v.name
        for fmt in FORMATS:
            assert "fp32" in v.tolerances[fmt], (v.name, fmt)  # the schema requires it
            assert set(v.tolerances[fmt]) <= set(offered(fmt)), (v.name, fmt)


def test_catalog_without_an_fp32_tolerance_is_refused(catalog_copy) -> None:
    from zoo.catalog import Catalog
    from zoo.errors import CatalogError

    text = catalog_copy.read_text()
    pattern = re.compile(r"(\n      ncnn:\n(?:        #.*\n)*)        fp32: \{[^}]*\}\n")
    assert pattern.search(text)
    catalog_copy.write_text(pattern.sub(r"\1", text, count=1))
    with pytest.raises(CatalogError, match="fp32 tolerance missing for ncnn"):
        Catalog.load(catalog_copy)


# -- pip extras ------------------------------------------------------------------------------------------
def test_every_backend_extra_is_in_pyproject() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    for b in BACKENDS:
        assert b.extra in extras, b
    everything = extras["all"]
    assert len(everything) == 1
    named = set(re.fullmatch(r"zoo\[(.*)\]", everything[0]).group(1).split(","))
    assert {b.extra for b in BACKENDS} <= named and named <= set(extras)
    tested = [set(m.group(1).split(",")) for d in extras["test"] if (m := re.fullmatch(r"zoo\[(.*)\]", d))]
    assert any("all" in t for t in tested), extras["test"]  # the tests install every backend
    # the runtime package of each backend is in its extra (directly or through zoo[onnx])
    packages = {"onnx": "onnxruntime", "mnn": "MNN", "tflite": "ai-edge-litert", "ncnn": "ncnn", "executorch": "executorch"}
    for b in BACKENDS:
        assert any(d.startswith(packages[b.format]) for d in extras[b.extra]), (b.extra, extras[b.extra])


# -- CLI choices and help texts ----------------------------------------------------------------------------
def test_help_texts_list_the_table() -> None:
    for command in (["export"], ["publish"], ["pull"]):
        text = _help(*command)
        assert " ".join(FORMATS) in text, (command, text)
        assert " ".join(PRECISIONS) in text, command
    for command in (["compare"], ["bench"]):
        text = _help(*command)
        assert " ".join(RUNTIMES) in text, command
        assert " ".join(PRECISIONS) in text, command
    assert " or ".join(PROFILED_RUNTIMES) in _help("profile")


@pytest.mark.parametrize("command", [["export", "fgaf3", "--to"], ["publish", "fgaf3", "--to", "rel", "--formats"],
                                     ["pull", "fgaf3", "--format"]])
def test_format_choices_are_the_table(command, tmp_path) -> None:
    for fmt in FORMATS:  # the closest name to a typo is suggested, for every format
        typo = fmt + "x"
        result = CliRunner().invoke(cli, [*command, typo, "--out" if command[0] == "export" else "--precision",
                                          str(tmp_path / "o") if command[0] == "export" else "fp32"], standalone_mode=False)
        assert isinstance(result.exception, UsageError), (command, typo, result.output, result.exception)
        message = str(result.exception)
        assert f"unknown format {typo!r} (did you mean {fmt!r}" in message, message
        assert f"choose from {', '.join(FORMATS)}" in message
    assert not (tmp_path / "o").exists()


def test_runtime_choices_are_the_table(tmp_path) -> None:
    assert choose_runtimes(["all"]) == list(RUNTIMES)
    assert choose_runtimes([REFERENCE_RUNTIME]) == [] and choose_runtimes([]) == list(RUNTIMES)
    for runtime in RUNTIMES:
        typo = runtime[:-1]
        with pytest.raises(UsageError, match=f"did you mean {runtime!r}"):
            choose_runtimes([typo])
    result = CliRunner().invoke(cli, ["compare", "fgaf3", "--runtimes", "bogus", "--out", str(tmp_path)], standalone_mode=False)
    assert isinstance(result.exception, UsageError)
    assert "unknown runtime 'bogus'" in str(result.exception) and f"choose from {', '.join(RUNTIMES)}" in str(result.exception)
    result = CliRunner().invoke(cli, ["compare", "fgaf3", "--runtimes", "onnxruntim", "--out", str(tmp_path)], standalone_mode=False)
    assert "did you mean 'onnxruntime'" in str(result.exception)
    assert not any(tmp_path.iterdir())


def test_profile_runtimes_are_the_profiled_ones() -> None:
    for runtime in RUNTIMES:
        if runtime in PROFILED_RUNTIMES:
            check_request(runtime, "fp32")
        else:
            with pytest.raises(UsageError, match=f"choose from {', '.join(PROFILED_RUNTIMES)}"):
                check_request(runtime, "fp32")
    assert PROFILED_RUNTIMES == ("onnxruntime", "mnn")  # the two runtimes with a per-op profiler today


def test_layers_runtimes_are_the_tapped_ones() -> None:
    from compare.diagnose.layers import layer_runtimes
    from zoo.backends import TAPPED_RUNTIMES

    assert TAPPED_RUNTIMES == tuple(b.runtime for b in BACKENDS if b.taps) and "onnxruntime" in TAPPED_RUNTIMES
    assert layer_runtimes([]) == layer_runtimes(["all"]) == list(TAPPED_RUNTIMES)
    for b in BACKENDS:
        if b.taps:
            assert layer_runtimes([b.runtime]) == [b.runtime]
        else:
            with pytest.raises(UsageError, match=f"--layers: {b.runtime} has no tensor tap; choose from {', '.join(TAPPED_RUNTIMES)}"):
                layer_runtimes([b.runtime, "onnxruntime"])


def test_precision_choices_are_the_table(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["export", "fgaf3", "--to", "onnx", "--precision", "fp61", "--out", str(tmp_path)],
                                standalone_mode=False)
    assert isinstance(result.exception, UsageError)
    assert "did you mean 'fp16'" in str(result.exception) and f"choose from {', '.join(PRECISIONS)}" in str(result.exception)
    # a precision no requested format offers is a usage error naming what is offered
    result = CliRunner().invoke(cli, ["export", "fgaf3", "--to", "onnx", "--precision", "fp16", "--out", str(tmp_path)],
                                standalone_mode=False)
    assert isinstance(result.exception, UsageError) and f"onnx offers {', '.join(offered('onnx'))} only" in str(result.exception)
    assert not any(tmp_path.iterdir())


def test_module_documents_adding_a_runtime() -> None:
    assert "one exporter module, one runner module and one row" in " ".join(backends.__doc__.split())
