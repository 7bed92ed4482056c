"""Reference weights: bit-identical regeneration, realistic norms, verified cache."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.catalog import CATALOG, VARIANTS
from tests.helpers.cli import (
    error_line,
    run,  # noqa: F401 (fixture)
)
from tests.helpers.mounts import tmpfs  # noqa: F401 (fixture)
from zoo.errors import WeightsError
from zoo.paths import weights_path
from zoo.weights import ensure_weights, reference_weights_bytes


@pytest.mark.parametrize("name", VARIANTS)
def test_reference_weights_are_bit_identical_to_pinned_hash(name: str) -> None:
    v = CATALOG.get(name)
    torch.manual_seed(12345)  # torch's RNG plays no part in the draw
    data = reference_weights_bytes(v)
    assert hashlib.sha256(data).hexdigest() == v.weights.sha256
    assert len(data) == v.weights.bytes


@pytest.mark.parametrize("name", ["fgaf3-bn-c128", "base-c128"])
def test_norm_layers_are_not_identity(name: str) -> None:
    """A broken BatchNorm fold or a dropped LayerNorm affine must change the outputs."""
    state = load_file(str(ensure_weights(CATALOG.get(name))))
    bn = [k[: -len(".running_var")] for k in state if k.endswith("running_var")]
    ln = [k[: -len(".weight")] for k in state if "norm" in k and k.endswith(".weight") and f"{k[:-7]}.running_var" not in state]
    assert bn and (ln or name.endswith("bn-c128"))
    for p in bn:
        assert state[f"{p}.running_mean"].abs().min() > 0 and (state[f"{p}.running_var"] - 1).abs().mean() > 0.1
        assert (state[f"{p}.weight"] - 1).abs().mean() > 0.05 and state[f"{p}.bias"].abs().mean() > 0.01
    for p in ln:
        assert (state[f"{p}.weight"] - 1).abs().mean() > 0.05 and state[f"{p}.bias"].abs().mean() > 0.01
    if name.endswith("bn-c128"):
        assert any(k.startswith("fusion.blocks.") for k in bn)  # the (BN) blocks really carry BatchNorm


def test_pretrain_variants_have_their_own_weights() -> None:
    shas = {CATALOG.get(n).weights.sha256 for n in ("base-c128", "base-c128-mae", "base-c128-mtr")}
    assert len(shas) == 3


def test_corrupt_cache_entry_is_replaced() -> None:
    v = CATALOG.get("gaf3-bn-c128")
    path = ensure_weights(v)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    again = ensure_weights(v)
    assert hashlib.sha256(again.read_bytes()).hexdigest() == v.weights.sha256


def test_trained_weights_absent_from_cache_is_an_error() -> None:
    v = CATALOG.get("fgaf2")
    provenance = v.weights.provenance.model_copy(update={"kind": "trained"})
    trained = v.model_copy(update={"weights": v.weights.model_copy(update={"provenance": provenance, "sha256": "ab" * 32})})
    assert not weights_path(trained.weights.sha256, trained.weights.file).exists()
    with pytest.raises(WeightsError, match="not in the cache; register"):
        ensure_weights(trained)


# -- a full or read-only cache ----------------------------------------------------------------

def test_weights_into_a_full_cache(tmpfs, run, monkeypatch) -> None:
    cache = tmpfs("cache", size="64k")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    code, _, err = run("weights", "fgaf3")
    line = error_line(err)
    assert code == 1 and "weights of 'fgaf3': cannot write the cache" in line and "No space left on device" in line, line
    assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]  # no half-written file


def test_weights_into_a_read_only_cache(tmpfs, run, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmpfs("cache", ro=True)))
    code, _, err = run("weights", "fgaf3")
    line = error_line(err)
    assert code == 1 and "weights of 'fgaf3': cannot write the cache" in line and "Read-only file system" in line, line


def test_read_only_cache_that_holds_the_weights_still_serves_them(tmpfs, run, monkeypatch) -> None:
    from zoo.weights import ensure_weights

    v = CATALOG.get("fgaf3")
    src = ensure_weights(v)  # the session cache

    def populate(root: Path) -> None:
        dst = root / src.relative_to(weights_path(v.weights.sha256, v.weights.file).parents[2])
        dst.parent.mkdir(parents=True)
        shutil.copyfile(src, dst)

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmpfs("cache", size="16m", populate=populate, ro=True)))
    code, out, err = run("weights", "fgaf3", "--json", "-")
    assert code == 0, err
