"""`zoo register`: trained checkpoints in every accepted layout, strict matching, no pickle."""
from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.helpers.catalog import REPO
from tests.helpers.cli import (
    error_line,
    run,  # noqa: F401 (fixture)
)
from tests.helpers.mounts import tmpfs  # noqa: F401 (fixture)
from zoo.catalog import Catalog
from zoo.errors import CheckpointMismatch, UsageError
from zoo.paths import catalog_path
from zoo.register import register_checkpoint
from zoo.weights import load_model

VARIANT = "fgaf3-bn-c128"


def _trained_state() -> dict[str, torch.Tensor]:
    """The reference weights nudged, standing in for a trained checkpoint."""
    model = load_model(Catalog.load().get(VARIANT))
    gen = torch.Generator().manual_seed(7)
    return {k: (v + 0.01 * torch.randn(v.shape, generator=gen)) if v.is_floating_point() else v for k, v in model.state_dict().items()}


def _write(path: Path, state: dict[str, torch.Tensor], layout: str) -> Path:
    if layout == "safetensors":
        save_file(state, str(path))
    elif layout == "flat":
        torch.save(state, path)
    elif layout == "net-module":
        torch.save({"net": {f"module.{k}": v for k, v in state.items()}, "epoch": 300}, path)
    elif layout == "state_dict":
        torch.save({"state_dict": state, "optimizer": {"lr": torch.tensor(0.1)}}, path)
    elif layout == "model":
        torch.save({"model": {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}}, path)
    return path


@pytest.mark.parametrize(
    ("layout", "suffix"),
    [("safetensors", ".safetensors"), ("flat", ".pth"), ("net-module", ".pth.tar"), ("state_dict", ".pth"), ("model", ".pt")],
)
def test_register_round_trip(catalog_copy: Path, tmp_path: Path, layout: str, suffix: str) -> None:
    state = _trained_state()
    ckpt = _write(tmp_path / f"trained{suffix}", state, layout)
    result = register_checkpoint(Catalog.load(catalog_copy), VARIANT, ckpt, "run 42, LaSOT 54.85")

    variant = Catalog.load(catalog_copy).get(VARIANT)
    assert variant.weights.sha256 == result.sha256 == hashlib.sha256(result.cache_path.read_bytes()).hexdigest()
    assert variant.weights.provenance.kind == "trained"
    assert variant.weights.provenance.description == "run 42, LaSOT 54.85"
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() in variant.weights.provenance.source
    loaded = load_model(variant).state_dict()
    for k, v in state.items():
        torch.testing.assert_close(loaded[k], v, rtol=0, atol=0)
    assert Catalog.load().get(VARIANT).weights.sha256 != variant.weights.sha256  # the real catalog is untouched


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("head.neck.0.weight"), "1 missing: head.neck.0.weight"),
        (lambda s: s.__setitem__("head.extra.weight", torch.zeros(3)), "1 unexpected: head.extra.weight"),
        (lambda s: s.__setitem__("fusion.blocks.0.attn.qkv.weight", torch.zeros(3, 3)), "1 mis-shaped: fusion.blocks.0.attn.qkv.weight (3, 3) != (384, 128)"),
    ],
)
def test_mismatched_checkpoint_is_refused(catalog_copy: Path, tmp_path: Path, mutate, message: str) -> None:
    state = _trained_state()
    mutate(state)
    ckpt = _write(tmp_path / "bad.safetensors", state, "safetensors")
    before = catalog_copy.read_bytes()
    with pytest.raises(CheckpointMismatch) as info:
        register_checkpoint(Catalog.load(catalog_copy), VARIANT, ckpt)
    assert message in str(info.value)
    assert catalog_copy.read_bytes() == before


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_never_executed(catalog_copy: Path, tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "evil.pth"
    torch.save({"state_dict": _trained_state(), "hook": _Payload()}, ckpt)
    with pytest.raises(UsageError, match="evil.pth: cannot read checkpoint"):
        register_checkpoint(Catalog.load(catalog_copy), VARIANT, ckpt)
    assert "this must never run" not in capsys.readouterr().out


def test_bad_files(catalog_copy: Path, tmp_path: Path) -> None:
    catalog = Catalog.load(catalog_copy)
    with pytest.raises(UsageError, match="checkpoint not found"):
        register_checkpoint(catalog, VARIANT, tmp_path / "nope.pth")
    (tmp_path / "w.bin").write_bytes(b"123")
    with pytest.raises(UsageError, match="unsupported checkpoint type"):
        register_checkpoint(catalog, VARIANT, tmp_path / "w.bin")
    (tmp_path / "trunc.safetensors").write_bytes(b"\x10\x00\x00")
    with pytest.raises(UsageError, match="cannot read checkpoint"):
        register_checkpoint(catalog, VARIANT, tmp_path / "trunc.safetensors")
    with pytest.raises(UsageError, match="unknown variant"):
        register_checkpoint(catalog, "fgaf9", tmp_path / "w.bin")


# -- bad input and a bad environment through the CLI ------------------------------------------

@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_register_refuses_nan_or_inf_weights_naming_the_tensors(catalog_copy, tmp_path, run, bad) -> None:
    state = _trained_state()
    state["head.neck.0.weight"].view(-1)[3] = bad
    state["fusion.blocks.0.attn.qkv.weight"].view(-1)[0] = bad
    ckpt = tmp_path / "trained.safetensors"
    save_file(state, str(ckpt))
    before = catalog_copy.read_bytes()
    code, _, err = run("register", VARIANT, str(ckpt), "--catalog", str(catalog_copy))
    line = error_line(err)
    assert code == 2 and "trained.safetensors: NaN or inf in 2 tensors:" in line, line
    assert "head.neck.0.weight" in line and "fusion.blocks.0.attn.qkv.weight" in line
    assert catalog_copy.read_bytes() == before


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 8)


def _malicious(path: Path) -> None:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": _Payload()}, path)


def _text(path: Path) -> None:
    path.write_text("hello, this is not a checkpoint\n")


@pytest.mark.parametrize("make", [_garbage, _malicious, _text], ids=["garbage", "malicious", "text"])
def test_unsafe_checkpoint_is_refused_without_weights_only_advice(catalog_copy, tmp_path, run, make) -> None:
    ckpt = tmp_path / "model.pth"
    make(ckpt)
    code, out, err = run("register", VARIANT, str(ckpt), "--catalog", str(catalog_copy))
    line = error_line(err)
    assert code == 2 and "model.pth: cannot read checkpoint: not a safe checkpoint (" in line, line
    assert "weights_only" not in err and "trust" not in err and "this must never run" not in out + err


def test_register_into_a_read_only_catalog(tmpfs, tmp_path, run) -> None:
    state = _trained_state()
    ckpt = tmp_path / "trained.safetensors"
    save_file(state, str(ckpt))
    ro = tmpfs("catalog", size="1m", populate=lambda p: shutil.copyfile(catalog_path(), p / "zoo.yaml"), ro=True)
    code, _, err = run("register", VARIANT, str(ckpt), "--catalog", str(ro / "zoo.yaml"))
    line = error_line(err)
    assert code == 1 and f"cannot update the catalog {ro / 'zoo.yaml'}: Read-only file system" in line, line
    assert (ro / "zoo.yaml").read_bytes() == catalog_path().read_bytes()


def test_register_into_a_read_only_cache(tmpfs, catalog_copy, tmp_path, run, monkeypatch) -> None:
    state = _trained_state()
    ckpt = tmp_path / "trained.safetensors"
    save_file(state, str(ckpt))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmpfs("cache", ro=True)))
    before = catalog_copy.read_bytes()
    code, _, err = run("register", VARIANT, str(ckpt), "--catalog", str(catalog_copy))
    line = error_line(err)
    assert code == 1 and "cannot store the weights in the cache" in line and "Read-only file system" in line, line
    assert catalog_copy.read_bytes() == before


def test_readme_describes_what_register_accepts() -> None:
    """register accepts .pt and fills in a missing num_batches_tracked (see
    test_register_round_trip[model-.pt]); the README says so."""
    row = next(ln for ln in (REPO / "README.md").read_text().splitlines() if ln.startswith("| `zoo register"))
    assert "`.pt`" in row and "num_batches_tracked" in row and "NaN" in row
