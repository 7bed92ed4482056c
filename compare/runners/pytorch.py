"""PyTorch eager runner: the catalog variant with its verified weights, the parity reference."""
from __future__ import annotations

import numpy as np
import torch

from compare.runners.base import BaseRunner
from zoo.models.fold import fold_batchnorm
from zoo.schema import Variant
from zoo.weights import load_model


class PytorchRunner(BaseRunner):
    """``load_model(variant)`` in eval mode, fp32, optionally BatchNorm-folded."""

    format = "pytorch"
    extra = ""

    def __init__(self, variant: Variant, fold: bool = False):
        super().__init__(f"{variant.name}/pytorch")
        self.variant = variant
        self.fold = fold

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.variant.io.inputs]

    def _load(self) -> None:
        model = load_model(self.variant)
        self._model = fold_batchnorm(model) if self.fold else model
        self._torch = torch

    def _close(self) -> None:
        self._model = None

    def _infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(inputs[name]) for name in self.input_names]
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                outs = self._timed(self._model, *args)
        finally:
            torch.set_num_threads(previous)
        if isinstance(outs, torch.Tensor):
            outs = (outs,)
        names = [s.name for s in self.variant.io.outputs]
        if len(outs) != len(names):
            raise ValueError(f"{self.name}: model returned {len(outs)} outputs, the catalog declares {len(names)}")
        # the model's forward returns outputs in the catalog's declared order (its contract)
        return {name: out.detach().numpy().astype(np.float32) for name, out in zip(names, outs, strict=True)}
