"""Issue 10 (hub, catalog, register, weights side): bad input and a bad environment are one line
and the right exit code, never an internal error, a hang or lost data.

Full and read-only file systems are real tmpfs mounts (tests/mounts.py; skipped where mounting
is not allowed): root ignores ``chmod``, so a read-only directory cannot be faked with modes.
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from exporters.base import run_tool
from tests.helpers.catalog import CATALOG, REPO
from tests.helpers.cli import run_main
from tests.helpers.mounts import tmpfs  # noqa: F401 (fixture)
from zoo.errors import UsageError
from zoo.hub.resolve import resolve_hub
from zoo.paths import catalog_path, weights_path
from zoo.requirements import MissingPackage

REGISTER_VARIANT = "fgaf3-bn-c128"
HUB_ENV = ("ZOO_HUB", "ZOO_OFFLINE", "ZOO_ALLOW_HTTP", "ZOO_HUB_TIMEOUT", "ZOO_HUB_RETRIES", "ZOO_HUB_BACKOFF")


@pytest.fixture
def run(capsys, monkeypatch):
    """Run ``zoo ARGS...`` in-process through the real entry point: (exit code, stdout, stderr)."""
    for key in HUB_ENV:
        monkeypatch.delenv(key, raising=False)
    return lambda *args: run_main(capsys, monkeypatch, *args)


def one_line(err: str) -> str:
    """The single error line of ``err`` (no traceback, no 'internal error')."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


def usage_line(err: str) -> str:
    """A usage error (exit 2) is one line, 'error: ...', no traceback."""
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


# -- catalog ---------------------------------------------------------------------------------------

def test_catalog_that_is_not_utf8_is_one_line(tmp_path, run, monkeypatch) -> None:
    bad = tmp_path / "zoo.yaml"
    bad.write_bytes(catalog_path().read_bytes().replace(b"description:", b"descr\xe9ption:", 1))
    monkeypatch.setenv("ZOO_CATALOG", str(bad))
    code, _, err = run("list")
    assert code == 2 and "zoo.yaml: not UTF-8 text (byte 0xe9 at line" in one_line(err)


BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi"))


@pytest.mark.parametrize("text", [BOMB, BOMB + "schema_version: 1\nvariants: [*i]\n", "a: &a [*a]\n"],
                         ids=["top-level", "in-variants", "recursive"])
def test_yaml_alias_bomb_is_refused_quickly(tmp_path, run, monkeypatch, text) -> None:
    bomb = tmp_path / "zoo.yaml"
    bomb.write_text(text)
    monkeypatch.setenv("ZOO_CATALOG", str(bomb))
    start = time.monotonic()
    code, _, err = run("list")
    assert time.monotonic() - start < 2
    line = one_line(err)
    assert code == 2 and line.startswith("error: zoo.yaml:"), line


def test_catalog_with_ordinary_anchors_still_loads() -> None:
    assert "*backbone-c128" in catalog_path().read_text() and len(CATALOG) == 15


# -- register ----------------------------------------------------------------------------------------

def _state() -> dict[str, torch.Tensor]:
    from tests.test_register import _trained_state

    return _trained_state()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_register_refuses_nan_or_inf_weights_naming_the_tensors(catalog_copy, tmp_path, run, bad) -> None:
    state = _state()
    state["head.neck.0.weight"].view(-1)[3] = bad
    state["fusion.blocks.0.attn.qkv.weight"].view(-1)[0] = bad
    ckpt = tmp_path / "trained.safetensors"
    save_file(state, str(ckpt))
    before = catalog_copy.read_bytes()
    code, _, err = run("register", REGISTER_VARIANT, str(ckpt), "--catalog", str(catalog_copy))
    line = one_line(err)
    assert code == 2 and "trained.safetensors: NaN or inf in 2 tensors:" in line, line
    assert "head.neck.0.weight" in line and "fusion.blocks.0.attn.qkv.weight" in line
    assert catalog_copy.read_bytes() == before


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


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
    code, out, err = run("register", REGISTER_VARIANT, str(ckpt), "--catalog", str(catalog_copy))
    line = one_line(err)
    assert code == 2 and "model.pth: cannot read checkpoint: not a safe checkpoint (" in line, line
    assert "weights_only" not in err and "trust" not in err and "this must never run" not in out + err


def test_register_into_a_read_only_catalog(tmpfs, tmp_path, run) -> None:
    state = _state()
    ckpt = tmp_path / "trained.safetensors"
    save_file(state, str(ckpt))
    ro = tmpfs("catalog", size="1m", populate=lambda p: shutil.copyfile(catalog_path(), p / "zoo.yaml"), ro=True)
    code, _, err = run("register", REGISTER_VARIANT, str(ckpt), "--catalog", str(ro / "zoo.yaml"))
    line = one_line(err)
    assert code == 1 and f"cannot update the catalog {ro / 'zoo.yaml'}: Read-only file system" in line, line
    assert (ro / "zoo.yaml").read_bytes() == catalog_path().read_bytes()


def test_register_into_a_read_only_cache(tmpfs, catalog_copy, tmp_path, run, monkeypatch) -> None:
    state = _state()
    ckpt = tmp_path / "trained.safetensors"
    save_file(state, str(ckpt))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmpfs("cache", ro=True)))
    before = catalog_copy.read_bytes()
    code, _, err = run("register", REGISTER_VARIANT, str(ckpt), "--catalog", str(catalog_copy))
    line = one_line(err)
    assert code == 1 and "cannot store the weights in the cache" in line and "Read-only file system" in line, line
    assert catalog_copy.read_bytes() == before


def test_readme_describes_what_register_accepts() -> None:
    """Item 10: register accepts .pt and fills in a missing num_batches_tracked (see
    test_register_round_trip[model-.pt]); the README says so."""
    row = next(ln for ln in (REPO / "README.md").read_text().splitlines() if ln.startswith("| `zoo register"))
    assert "`.pt`" in row and "num_batches_tracked" in row and "NaN" in row


# -- weights cache -----------------------------------------------------------------------------------

def test_weights_into_a_full_cache(tmpfs, run, monkeypatch) -> None:
    cache = tmpfs("cache", size="64k")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    code, _, err = run("weights", "fgaf3")
    line = one_line(err)
    assert code == 1 and "weights of 'fgaf3': cannot write the cache" in line and "No space left on device" in line, line
    assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]  # no half-written file


def test_weights_into_a_read_only_cache(tmpfs, run, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmpfs("cache", ro=True)))
    code, _, err = run("weights", "fgaf3")
    line = one_line(err)
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


# -- hub settings --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_pull_timeout_must_be_finite(run, value) -> None:
    code, _, err = run("pull", "fgaf3", "--hub", "http://127.0.0.1:9", "--timeout", value)
    assert code == 2 and "--timeout" in usage_line(err)


@pytest.mark.parametrize("name", ["ZOO_HUB_TIMEOUT", "ZOO_HUB_RETRIES", "ZOO_HUB_BACKOFF"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_hub_environment_numbers_must_be_finite(run, monkeypatch, name, value) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match=f"{name}='{value}' is not a (finite )?number"):
        resolve_hub("http://127.0.0.1:9")
    start = time.monotonic()
    code, _, err = run("pull", "fgaf3", "--hub", "http://127.0.0.1:9")
    assert code == 2 and f"error: {name}='{value}' is not a" in one_line(err)
    assert time.monotonic() - start < 2  # refused before any connection attempt


@pytest.mark.parametrize("args", [
    ["pull", "fgaf3", "--hub", "http://127.0.0.1:9", "--out", ""],
    ["publish", "fgaf3", "--formats", "onnx", "--to", ""],
    ["publish", "fgaf3", "--formats", "onnx", "--to", "x", "--artifacts", ""],
], ids=["pull --out", "publish --to", "publish --artifacts"])
def test_empty_path_is_a_usage_error(run, tmp_path, monkeypatch, args) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(*args)
    assert code == 2 and "empty path" in usage_line(err)
    assert list(tmp_path.iterdir()) == []


# -- converters next to the running Python -------------------------------------------------------------

def test_tools_are_found_beside_the_running_python(tmp_path, monkeypatch) -> None:
    """``/path/to/venv/bin/zoo export --to ncnn`` with the venv's bin not on PATH finds pnnx."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    tool = bin_dir / "faketool"
    tool.write_text("#!/bin/sh\necho converted \"$@\"\n")
    tool.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", os.defpath)
    log = tmp_path / "build.log"
    run_tool(["faketool", "a=1"], log, cwd=tmp_path, what="faketool", extra="ncnn")
    assert f"$ faketool a=1\n# faketool: {tool}\nconverted a=1" in log.read_text()
    with pytest.raises(MissingPackage, match=r"nosuchtool \(nosuchtool\) is not installed: pip install 'zoo\[ncnn\]'"):
        run_tool(["nosuchtool"], log, cwd=tmp_path, what="nosuchtool", extra="ncnn")


def test_pnnx_is_found_without_path(monkeypatch) -> None:
    real = Path(sys.executable).parent / "pnnx"
    if not real.is_file():
        pytest.skip("pnnx is not installed beside this Python")
    monkeypatch.setenv("PATH", os.defpath)
    from exporters.base import find_tool

    assert find_tool("pnnx") == str(real)
