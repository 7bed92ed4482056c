"""Read a trained checkpoint and match it strictly against a variant's architecture.

Accepted: ``.safetensors``, or ``.pth``/``.pth.tar``/``.pt`` read with
``torch.load(weights_only=True)`` (never a full unpickle). Dict layouts: the tensors at the
top level, or under ``net``, ``model`` or ``state_dict``; ``module.`` prefixes (DataParallel)
are stripped.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from zoo.errors import CheckpointMismatch, UsageError
from zoo.models import TrackerNet

_NESTED_KEYS = ("net", "model", "state_dict")
_TORCH_SUFFIXES = (".pth", ".pth.tar", ".pt", ".tar")


def _is_tensor_dict(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Return the flat state dict stored in ``path``."""
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    name = path.name.lower()
    try:
        if name.endswith(".safetensors"):
            raw: object = load_file(str(path))
        elif name.endswith(_TORCH_SUFFIXES):
            raw = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise UsageError(f"{path.name}: unsupported checkpoint type (use .safetensors, .pth, .pth.tar or .pt)")
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path.name}: cannot read checkpoint: {first}") from None
    if isinstance(raw, dict):
        for key in _NESTED_KEYS:
            if key in raw and isinstance(raw[key], dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict):
        raise UsageError(f"{path.name}: expected a dict of tensors, found {type(raw).__name__}")
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not _is_tensor_dict(tensors):
        raise UsageError(f"{path.name}: no tensors found (looked at the top level and under {', '.join(_NESTED_KEYS)})")
    return {k.removeprefix("module."): v for k, v in tensors.items()}


def match_state_dict(model: TrackerNet, state: dict[str, torch.Tensor], label: str) -> dict[str, torch.Tensor]:
    """Check ``state`` against ``model`` key by key and shape by shape; return it ordered.

    BatchNorm's ``num_batches_tracked`` counters play no part at inference and are filled in
    when a checkpoint lacks them. Anything else missing, unexpected or mis-shaped is an error
    that lists the offending keys.
    """
    expected = model.state_dict()
    state = dict(state)
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if items:
            shown = ", ".join(items[:4]) + (f", ... ({len(items)} in all)" if len(items) > 4 else "")
            problems.append(f"{len(items)} {title}: {shown}")
    if problems:
        raise CheckpointMismatch(f"{label} does not match the architecture: " + "; ".join(problems))
    return {k: state[k].to(expected[k].dtype).contiguous() for k in expected}
