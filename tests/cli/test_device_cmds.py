"""``zoo device``, ``--device`` and ``--verify-on`` as a user meets them: what they print, how they
exit, and that nothing half-built or tampered is ever used."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compare.devices import emulator
from tests.helpers.catalog import REPO
from tests.helpers.cli import run_main, zoo_as_user
from zoo.manifest import read_manifest


def test_device_list_names_every_kind(capsys, monkeypatch) -> None:
    code, out, _ = run_main(capsys, monkeypatch, "device", "list", "--json", "-")
    rows = json.loads(out)["devices"]
    assert code == 0 and [r["device"] for r in rows] == ["local", "arm64-emu[:CPU]", "ssh://[user@]host[:port]"]
    assert rows[1]["timing"].startswith("no: an emulated CPU gives parity, never speed")


@pytest.mark.parametrize("args, line", [
    (("device", "check", "arm64emu"), "unknown device 'arm64emu' (did you mean 'arm64-emu'?)"),
    (("device", "check", "arm64-emu:cortex-a67"), "unknown emulated CPU 'cortex-a67' (did you mean 'cortex-a76'"),
    (("device", "check", "ssh://pi@"), "bad device 'ssh://pi@': write ssh://[user@]host[:port]"),
    (("device", "setup", "ssh"), "ssh needs no setup here"),
    (("compare", "base-c128", "--device", "arm64-emu", "--threads", "1"),
     "no timing on arm64-emu:cortex-a76: an emulated CPU gives parity, never speed"),
])
def test_bad_device_input_is_one_line_and_exit_2(capsys, monkeypatch, args, line) -> None:
    code, _, err = run_main(capsys, monkeypatch, *args)
    assert code == 2 and line in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_device_not_set_up_says_how(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    if shutil.which(emulator.QEMU) is None:
        pytest.skip(f"{emulator.QEMU} is not installed")
    code, _, err = run_main(capsys, monkeypatch, "device", "check", "arm64-emu")
    assert code == 2 and "arm64-emu is not set up: run zoo device setup arm64-emu" in err


def _cache_beside(real: Path, tmp: Path, copy: tuple[str, ...] = ()) -> Path:
    """A cache whose arm64-emu tree is the session's (symlinked), its downloads hard links
    except the files in ``copy`` (real copies, safe to change)."""
    (tmp / "devices").mkdir(parents=True)
    os.symlink(real / "devices" / "arm64-emu", tmp / "devices" / "arm64-emu")
    dl = tmp / "devices" / "downloads" / "arm64-emu"
    dl.mkdir(parents=True)
    for f in (real / "devices" / "downloads" / "arm64-emu").iterdir():
        if f.is_file():
            (shutil.copyfile if f.name in copy else os.link)(f, dl / f.name)
    return tmp


def test_a_tampered_wheel_is_refused(arm64_emu, isolated_cache, tmp_path, capsys, monkeypatch) -> None:
    wheel = next(w["file"] for w in arm64_emu["wheels"] if w["dist"] == "numpy")
    cache = _cache_beside(isolated_cache, tmp_path / "cache", copy=(wheel,))
    with open(cache / "devices" / "downloads" / "arm64-emu" / wheel, "r+b") as f:
        f.seek(1000)
        f.write(b"\0tampered\0")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    code, _, err = run_main(capsys, monkeypatch, "device", "check", "arm64-emu")
    assert code == 1 and f"{wheel}" in err and "does not match its recorded sha256" in err, err
    assert "setup arm64-emu --force" in err


def test_an_interrupted_setup_leaves_nothing_half_built(arm64_emu, isolated_cache, tmp_path) -> None:
    cache = tmp_path / "cache"
    dl = cache / "devices" / "downloads" / "arm64-emu"
    shutil.copytree(isolated_cache / "devices" / "downloads" / "arm64-emu", dl, copy_function=os.link)
    env = {**os.environ, "ZOO_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "device", "setup", "arm64-emu"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not list((cache / "devices").glob(".arm64-emu-building-*/sysroot")) and time.time() < deadline:
        time.sleep(0.05)  # the downloads are all there: it is unpacking
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    assert not (cache / "devices" / "arm64-emu").exists()
    assert not list((cache / "devices").glob(".arm64-emu-building-*"))
    check = zoo_as_user("device", "check", "arm64-emu", env=env)
    assert check.returncode == 2 and "not set up" in check.stderr


def test_verify_on_records_the_device_and_refuses_a_failure(arm64_emu, exported, tmp_path, catalog_copy) -> None:
    """An installed ONNX artifact passes on the ARM big core with the catalog's tolerance (the record
    is added to its manifest); a new one, with a catalog whose arm64-fp16 tolerance nothing can meet,
    is not installed."""
    exported.copy(tmp_path / "a", "base-c128", "onnx")
    good = zoo_as_user("export", "base-c128", "--to", "onnx", "--artifacts", str(tmp_path / "a"), "--verify-on", "arm64-emu",
                       "--json", str(tmp_path / "a.json"))
    assert good.returncode == 0, good.stderr
    assert json.loads((tmp_path / "a.json").read_text())["artifacts"][0]["status"] == "reused"
    record = read_manifest(tmp_path / "a" / "base-c128" / "onnx").parity.devices
    assert [(d.device, d.family, d.machine, d.passed) for d in record] == [("arm64-emu:cortex-a76", "arm64-fp16", "aarch64", True)]
    assert record[0].runtime_version and all(o.max_abs_err < 1e-4 for o in record[0].outputs)
    text = catalog_copy.read_text().replace("fp32: {atol: 0.0001, rtol: 0.001}",
                                           "fp32: {atol: 0.0001, rtol: 0.001, families: {arm64-fp16: {atol: 0.0, rtol: 0.0}}}", 1)
    catalog_copy.write_text(text)
    bad = zoo_as_user("export", "base-c128", "--to", "onnx", "--artifacts", str(tmp_path / "b"), "--verify-on", "arm64-emu",
                      env={"ZOO_CATALOG": str(catalog_copy)})
    assert bad.returncode == 1
    assert "on arm64-emu:cortex-a76 (arm64-fp16 tolerance): above tolerance (atol 0, rtol 0)" in bad.stderr, bad.stderr
    assert not (tmp_path / "b" / "base-c128" / "onnx").exists()


def test_compare_on_a_device_reports_both_figures(arm64_emu, exported, capsys, monkeypatch) -> None:
    code, out, err = run_main(capsys, monkeypatch, "compare", "base-c128", "--runtime", "onnxruntime", "--samples", "1",
                              "--runs", "0", "--device", "arm64-emu", "--artifacts", str(exported.out), "--json", "-")
    assert code == 0, err
    report = json.loads(out)
    (row,) = [r for r in report["devices"] if r["output"] == "score"]
    assert row["device"] == "arm64-emu:cortex-a76" and row["family"] == "arm64-fp16" and row["status"] == "pass"
    assert 0 < row["max_abs_err"] < 1e-4 and 0 < row["local_max_abs_err"] < 1e-4
    assert {r["device"] for r in report["tracker"]} == {"local", "arm64-emu:cortex-a76"}


def test_a_host_without_qemu_or_apt_is_told_what_to_install(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, _, err = run_main(capsys, monkeypatch, "device", "setup", "arm64-emu")
    assert code == 2 and "qemu-aarch64-static is not installed: apt-get install qemu-user-static" in err
    real = shutil.which(emulator.QEMU, path=os.defpath + ":/usr/bin")
    if real is None:
        pytest.skip("no qemu-aarch64-static here to stand beside a missing apt-get")
    (tmp_path / "bin").mkdir()
    os.symlink(real, tmp_path / "bin" / emulator.QEMU)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    code, _, err = run_main(capsys, monkeypatch, "device", "setup", "arm64-emu")
    assert code == 2 and "needs apt-get, which is not installed (a Debian host with apt is required)" in err, err
    assert not (tmp_path / "cache" / "devices" / "arm64-emu").exists()
