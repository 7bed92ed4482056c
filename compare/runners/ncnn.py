"""ncnn runner: ``ncnn.Net`` from the ``.param``/``.bin`` pair, blobs named through the manifest.

``net.opt.num_threads`` is set before loading. fp32 artifacts run with fp16 packing, storage
and arithmetic off (true fp32); fp16 artifacts (fp16 weights in the ``.bin``) with them on,
which takes effect on CPUs with fp16 support. bf16 artifacts (the fp32 files) run with
``use_bf16_storage`` on.
"""
from __future__ import annotations

import numpy as np

from compare.runners.base import ArtifactRunner
from compare.runners.taps import NcnnTap
from zoo.requirements import require


class NcnnRunner(ArtifactRunner):
    format = "ncnn"

    def tensor_tap(self):
        """Every intermediate tensor of this artifact, for ``zoo compare --layers`` (:mod:`compare.runners.taps`)."""
        return NcnnTap(self)

    def settings(self) -> dict:
        """``net.opt`` attributes: threads, the fp16 switches (fp16 artifacts), bf16 storage (bf16)."""
        half = self.manifest.precision == "fp16"
        # bf16 artifacts: the same fp32 .param/.bin, weights and activations stored as bfloat16 at
        # load/run time (AVX512-BF16 kernels where the CPU has them)
        return {"num_threads": self.threads, "use_fp16_packed": half, "use_fp16_storage": half,
                "use_fp16_arithmetic": half, "use_bf16_storage": self.manifest.precision == "bf16"}

    def _load(self) -> None:
        ncnn = require("ncnn", self.extra, "ncnn")
        net = ncnn.Net()
        for key, value in self.settings().items():
            setattr(net.opt, key, value)
        for kind, load in (("param", net.load_param), ("bin", net.load_model)):
            path = self.model_file(f".{kind}")
            if load(str(path)) != 0:
                raise RuntimeError(f"{self.name}: ncnn could not load {path.name}")
        self._ncnn = ncnn
        self._net = net

    def _close(self) -> None:
        if getattr(self, "_net", None) is not None:
            self._net.clear()
        self._net = None

    def keep_input(self, runtime_name: str, value: np.ndarray) -> object:
        """An ``ncnn.Mat`` owning a copy of ``value``, fed as it is on every call."""
        # clone: the Mat must own its data (the numpy buffer is not kept alive by ncnn)
        return self._ncnn.Mat(np.ascontiguousarray(value, dtype=np.float32), batch_index=0).clone()

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ncnn = self._ncnn
        out = {}
        with self._net.create_extractor() as ex:
            for name, array in feed.items():
                if isinstance(array, ncnn.Mat):  # a Mat kept by the caller (split cache)
                    ex.input(name, array)
                    continue
                # clone: the Mat must own its data, the numpy buffer is not kept alive by ncnn
                ex.input(name, ncnn.Mat(array, batch_index=0).clone())
            for b in self.manifest.outputs:
                ret, mat = ex.extract(b.runtime_name)
                if ret != 0:
                    raise RuntimeError(f"{self.name}: ncnn extract({b.runtime_name!r}) returned {ret}")
                out[b.runtime_name] = np.array(mat.numpy(batch_index=0), dtype=np.float32, copy=True)
        return out
