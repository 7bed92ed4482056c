"""MNN: ``mnnconvert`` from the verified ONNX model; fp32, or fp16 weights (``--fp16``).

The converter runs as ``python -c 'import _tools; _tools.mnnconvert(argv)'``: the C++ converter
that the ``mnnconvert`` console script wraps. The script itself also tries to ``pip install``
a logging SDK and reports every conversion to a remote log service; calling the extension
directly converts identically without either.
"""
from __future__ import annotations

import importlib.util
import shutil

from exporters.base import BuildContext, ConversionError, ConvertResult, Exporter, nchw_bindings, package_version, python_tool, run_tool
from zoo.catalog import Catalog
from zoo.manifest import Converter
from zoo.requirements import MissingPackage

MODEL_FILE = "model.mnn"
# _tools.mnnconvert returns True even on failure: success is judged by its output file and log
_CONVERT = "import sys, _tools; _tools.mnnconvert(['mnnconvert'] + sys.argv[1:])"


class MnnExporter(Exporter):
    name = "mnn"

    def versions(self) -> dict[str, str]:
        return {"MNN": package_version("MNN", self.extra)}

    def flags(self, precision: str) -> list[str]:
        flags = ["-f", "ONNX", "--modelFile", "model.onnx", "--MNNModel", MODEL_FILE, "--bizCode", "zoo"]
        return flags + (["--fp16"] if precision == "fp16" else [])

    def options(self, precision: str, catalog: Catalog) -> dict:
        return {"precision": precision, "flags": self.flags(precision)}

    def convert(self, ctx: BuildContext) -> ConvertResult:
        """Convert ``ctx.onnx_path`` to ``model.mnn`` (tensor names are kept from the ONNX graph)."""
        if importlib.util.find_spec("_tools") is None:  # (importing it prints a banner)
            raise MissingPackage(f"the MNN converter (MNN's _tools) is not installed: pip install 'zoo[{self.extra}]'")
        work = ctx.build_dir / "work"
        work.mkdir()
        shutil.copyfile(ctx.onnx_path, work / "model.onnx")
        flags = self.flags(ctx.precision)
        run_tool(python_tool(_CONVERT) + flags, ctx.log_path, cwd=work, what="mnnconvert", extra=self.extra)
        produced = work / MODEL_FILE
        log = ctx.log_path.read_text(errors="replace")
        if not produced.is_file() or "Converted Success" not in log:
            raise ConversionError("mnnconvert did not report success")
        produced.replace(ctx.build_dir / MODEL_FILE)
        shutil.rmtree(work)
        variant = ctx.variant
        return ConvertResult(
            files=[MODEL_FILE],
            inputs=nchw_bindings(variant.io.inputs),
            outputs=nchw_bindings(variant.io.outputs),
            converter=Converter(name="mnnconvert", version=package_version("MNN", self.extra), flags=["mnnconvert", *flags]),
        )
