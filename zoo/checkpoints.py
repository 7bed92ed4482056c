"""Read a trained checkpoint and match it strictly against a variant's architecture.

Accepted: ``.safetensors``, or ``.pth``/``.pth.tar``/``.pt`` read with
``torch.load(weights_only=True)`` (never a full unpickle). Dict layouts: the tensors at the
top level, or under ``net``, ``model`` or ``state_dict``; ``module.`` prefixes (DataParallel)
are stripped. A file that is not a plain tensor checkpoint is refused as "not a safe
checkpoint" (PyTorch's own message, which suggests disabling the safe loader, is never shown);
tensors holding NaN or inf are refused by name.
"""
from __future__ import annotations

import re
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
    if not name.endswith((".safetensors", *_TORCH_SUFFIXES)):
        raise UsageError(f"{path.name}: unsupported checkpoint type (use .safetensors, .pth, .pth.tar or .pt)")
    try:
        if name.endswith(".safetensors"):
            raw: object = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise UsageError(f"{path.name}: cannot read checkpoint: {exc.strerror or exc}") from None
    except Exception as exc:  # unpickling, zip, safetensors header, KeyError on garbage ...
        raise UsageError(f"{path.name}: cannot read checkpoint: not a safe checkpoint ({_reason(exc)}); "
                         "only plain tensors are loaded, never code") from None
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


_REASONS = (
    re.compile(r"Unsupported global: GLOBAL (\S+)"),  # pickled code or a class zoo will not import
    re.compile(r"(Unsupported operand \d+)"),
    re.compile(r"failed reading zip archive: ([^.]+)"),
)


def _reason(exc: Exception) -> str:
    """What was wrong with the file, in a few words: never the loader's advice on how to load it
    unsafely (PyTorch suggests ``weights_only=False``, i.e. running the file's code)."""
    text = str(exc)
    for pattern in _REASONS:
        m = pattern.search(text)
        if m:
            found = m.group(1)
            return f"it references {found}" if pattern is _REASONS[0] else found
    if isinstance(exc, SafetensorError):
        return f"safetensors: {text.splitlines()[0] if text else 'invalid header'}"
    if "weights_only" in text or "torch.load" in text or not text.strip():
        return f"unreadable data ({type(exc).__name__})"
    return f"{type(exc).__name__}: {text.strip().splitlines()[0][:120]}"


def nonfinite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or inf."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def match_state_dict(model: TrackerNet, state: dict[str, torch.Tensor], label: str) -> dict[str, torch.Tensor]:
    """Check ``state`` against ``model`` key by key and shape by shape; return it ordered.

    BatchNorm's ``num_batches_tracked`` counters play no part at inference and are filled in
    when a checkpoint lacks them. Anything else missing, unexpected or mis-shaped is an error
    that lists the offending keys, and so is a tensor holding NaN or inf.
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
    ordered = {k: state[k].to(expected[k].dtype).contiguous() for k in expected}
    bad = nonfinite_tensors(ordered)  # after the cast: a float64 1e300 is inf in float32
    if bad:
        shown = ", ".join(bad[:4]) + (f", ... ({len(bad)} in all)" if len(bad) > 4 else "")
        raise CheckpointMismatch(f"{label}: NaN or inf in {len(bad)} tensor{'s' if len(bad) > 1 else ''}: {shown}; "
                                 "refusing weights that cannot give finite outputs")
    return ordered
