"""ncnn: ``pnnx`` from the verified ONNX model writes ``model.ncnn.param``/``.bin``.

pnnx renames the tensors: inputs become blobs ``in0, in1, ...`` in the ONNX graph's input
order and outputs ``out0, out1, ...`` in its output order. The exporter checks that against the
``.param`` file (Input layers, output blobs) and the input shapes pnnx reports, and records
the catalog name -> blob name map in the bindings; the verification run then checks the outputs
numerically. fp16 stores the weights as fp16 in the ``.bin`` (``fp16=1``, half the size);
fp32 keeps them fp32 (``fp16=0``; pnnx's default would be fp16). bf16 is the fp32 pair run
with ``use_bf16_storage`` (:class:`compare.runners.ncnn.NcnnRunner`).
"""
from __future__ import annotations

import re
import shutil

from exporters.base import BuildContext, ConversionError, ConvertResult, Exporter, nchw_bindings, package_version, run_tool
from zoo.catalog import Catalog
from zoo.manifest import Converter

PARAM, BIN = "model.ncnn.param", "model.ncnn.bin"


def param_blobs(param_text: str) -> tuple[list[str], set[str]]:
    """(Input layer blob names in file order, every blob name) of an ncnn ``.param`` file."""
    lines = param_text.splitlines()
    if not lines or lines[0].strip() != "7767517":
        raise ConversionError("not an ncnn .param file (bad magic)")
    inputs, blobs = [], set()
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        names = parts[4:4 + n_in + n_out]
        blobs.update(names)
        if parts[0] == "Input":
            inputs.extend(names[n_in:])
    return inputs, blobs


class NcnnExporter(Exporter):
    name = "ncnn"

    def versions(self) -> dict[str, str]:
        return {dist: package_version(dist, self.extra) for dist in ("pnnx", "ncnn")}

    def flags(self, variant, precision: str) -> list[str]:
        shapes = ",".join("[" + ",".join(map(str, s.shape)) + "]" for s in variant.io.inputs)
        return ["pnnx", "model.onnx", f"inputshape={shapes}", f"fp16={int(precision == 'fp16')}",
                f"ncnnparam={PARAM}", f"ncnnbin={BIN}", "pnnxparam=model.pnnx.param", "pnnxbin=model.pnnx.bin",
                "pnnxpy=model_pnnx.py", "pnnxonnx=model.pnnx.onnx", "ncnnpy=model_ncnn.py"]

    def options(self, precision: str, catalog: Catalog) -> dict:
        return {"precision": precision, "fp16_weights": precision == "fp16"}

    def convert(self, ctx: BuildContext) -> ConvertResult:
        """Run pnnx in a scratch directory, keep the ``.param``/``.bin`` pair and the blob map."""
        variant = ctx.variant
        if any(s.shape[0] != 1 for s in variant.io.inputs):
            raise ConversionError("ncnn runs batch 1 only; the catalog declares another batch size")
        work = ctx.build_dir / "work"
        work.mkdir()
        shutil.copyfile(ctx.onnx_path, work / "model.onnx")
        flags = self.flags(variant, ctx.precision)
        log_start = ctx.log_path.stat().st_size if ctx.log_path.exists() else 0
        run_tool(flags, ctx.log_path, cwd=work, what="pnnx", extra=self.extra)  # found beside sys.executable first
        if not (work / PARAM).is_file() or not (work / BIN).is_file():
            raise ConversionError("pnnx wrote no ncnn model")
        in_blobs = [f"in{i}" for i in range(len(variant.io.inputs))]
        out_blobs = [f"out{i}" for i in range(len(variant.io.outputs))]
        inputs, blobs = param_blobs((work / PARAM).read_text())
        if inputs != in_blobs or not set(out_blobs) <= blobs or f"out{len(out_blobs)}" in blobs:
            raise ConversionError(f"ncnn blobs do not match the catalog I/O: inputs {inputs}, expected {in_blobs} and {out_blobs}")
        with open(ctx.log_path, errors="replace") as f:
            f.seek(log_start)
            reported = re.search(r"model inputshape = (\S+)", f.read())
        expected = ",".join("[" + ",".join(map(str, s.shape)) + "]f32" for s in variant.io.inputs)
        if not reported or reported.group(1) != expected:
            raise ConversionError(f"pnnx input order/shapes {reported.group(1) if reported else '?'} differ from the catalog's {expected}")
        for name in (PARAM, BIN):
            (work / name).replace(ctx.build_dir / name)
        shutil.rmtree(work)
        return ConvertResult(
            files=[PARAM, BIN],
            inputs=nchw_bindings(variant.io.inputs, in_blobs),
            outputs=nchw_bindings(variant.io.outputs, out_blobs),
            converter=Converter(name="pnnx", version=package_version("pnnx", self.extra), flags=flags),
            notes=["ncnn blob names are pnnx's in<i>/out<i> in the ONNX graph's declared I/O order"]
            + (["bf16: fp32 .param/.bin; the runner sets net.opt.use_bf16_storage (bfloat16 weights and activations)"]
               if ctx.precision == "bf16" else []),
        )
