"""zoo publish / pull / cache against a real HTTP server on 127.0.0.1 with injected faults.

A module fixture publishes base-c128 (ONNX and ncnn fp32/fp16: one- and two-file artifacts) from
the session's shared export and serves the tree (tests/helpers/hub_server.py). Each test gets a fresh cache. The CLI
runs in-process through ``zoo.cli.main`` (its real one-line errors and exit codes) except where
separate processes are the point.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from compare.provision import ensure, keys_for
from tests.helpers.catalog import CATALOG, REPO
from tests.helpers.cli import run_main
from tests.helpers.export import ZOO, assert_artifact_valid
from tests.helpers.hub_server import HubServer
from tests.helpers.mounts import tmpfs  # noqa: F401 (fixture)
from zoo.artifacts import check_files
from zoo.errors import UsageError, WeightsError, ZooError
from zoo.fileio import sha256_file
from zoo.hub.index import parse_index
from zoo.hub.resolve import HubConfig, resolve_hub, safe_relpath
from zoo.manifest import read_manifest
from zoo.paths import weights_path
from zoo.release.publish import publish
from zoo.weights import ensure_weights

VARIANT = "base-c128"
FORMATS = ["onnx", "ncnn"]
ONNX = f"artifacts/{VARIANT}/onnx/model.onnx"
NCNN_BIN = f"artifacts/{VARIANT}/ncnn/model.ncnn.bin"
HUB_ENV = ("ZOO_HUB", "ZOO_OFFLINE", "ZOO_ALLOW_HTTP", "ZOO_HUB_TIMEOUT", "ZOO_HUB_RETRIES", "ZOO_HUB_BACKOFF")


@pytest.fixture(scope="module")
def exported(exported) -> Path:
    """base-c128's artifacts: the session's shared export (read-only; ONNX and ncnn fp32/fp16
    -- one- and two-file artifacts -- are published here)."""
    return exported.out


@pytest.fixture(scope="module")
def release(exported, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("release") / "v1"
    publish([CATALOG.get(VARIANT)], FORMATS, ["fp32", "fp16"], exported, dest)
    return dest


@pytest.fixture(scope="module")
def server(release):
    with HubServer(release) as srv:
        yield srv


@pytest.fixture
def hub(server, tmp_path, monkeypatch) -> HubServer:
    """The module's server with no faults and an empty log; a fresh cache; quick retries."""
    server.reset()
    for key in HUB_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOO_HUB_BACKOFF", "0.01")
    monkeypatch.setenv("ZOO_HUB_RETRIES", "4")
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "5")
    return server


@pytest.fixture
def run(capsys, monkeypatch):
    """Run ``zoo ARGS...`` in-process: (exit code, stdout, stderr)."""
    return lambda *args: run_main(capsys, monkeypatch, *args)


def cache() -> Path:
    return Path(os.environ["ZOO_CACHE_DIR"])


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.lower().startswith("error:")]  # ours, or click's "Error:"
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def index_entry(release: Path, rel_url: str) -> dict:
    index = json.loads((release / "index.json").read_text())
    for art in index["variants"][VARIANT]["artifacts"]:
        for f in art["files"]:
            if f["url"] == rel_url:
                return f
    raise KeyError(rel_url)


def assert_nothing_visible(sha256: str) -> None:
    """No installed copy, no partial download and no artifact directory for a refused file."""
    assert not (cache() / "files" / sha256).exists()
    assert not list((cache() / "tmp").glob(f"{sha256}.part"))
    assert not (cache() / "artifacts" / VARIANT / "onnx").exists()


# -- publish ---------------------------------------------------------------------------------------

def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_publish_tree_is_reproducible_and_indexed(exported, release, tmp_path, run) -> None:
    again = tmp_path / "again"
    code, out, err = run("publish", VARIANT, "--formats", *FORMATS, "--artifacts", str(exported), "--to", str(again))
    assert code == 0, err
    assert tree(again) == tree(release)  # byte-identical: files and index
    code, _, err = run("publish", VARIANT, "--formats", *FORMATS, "--artifacts", str(exported), "--to", str(again))
    assert code == 0 and tree(again) == tree(release), err  # republishing in place changes nothing
    index = parse_index((release / "index.json").read_bytes(), "test")
    v = index.variants[VARIANT]
    assert [a.dirname for a in v.artifacts] == ["onnx", "ncnn", "ncnn-fp16"]
    assert v.weights.sha256 == CATALOG.get(VARIANT).weights.sha256 and v.weights.provenance == "reference"
    for art in v.artifacts:
        assert art.versions and art.zoo_version and art.manifest.variant == VARIANT
        for f in art.files:
            path = release / f.url
            assert not f.url.startswith("/") and ".." not in f.url
            assert sha256_file(path) == f.sha256 and path.stat().st_size == f.bytes
    assert index.zoo_version and b'"created"' in (release / "index.json").read_bytes()  # the manifests' own


def test_publish_refuses_a_corrupt_artifact(exported, tmp_path, run) -> None:
    src = tmp_path / "artifacts"
    shutil.copytree(exported / VARIANT / "onnx", src / VARIANT / "onnx")
    model = src / VARIANT / "onnx" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    code, _, err = run("publish", VARIANT, "--formats", "onnx", "--artifacts", str(src), "--to", str(tmp_path / "rel"))
    line = one_error_line(err)
    assert code == 1 and "model.onnx sha256 differs from the manifest" in line and "zoo export" in line
    assert not (tmp_path / "rel").exists()


def test_publish_names_the_export_command_for_missing_artifacts(exported, tmp_path, run) -> None:
    partial = tmp_path / "partial"  # ONNX and ncnn only: tflite is missing
    for dirname in ("onnx", "ncnn", "ncnn-fp16"):
        shutil.copytree(exported / VARIANT / dirname, partial / VARIANT / dirname)
    code, _, err = run("publish", VARIANT, "--formats", "onnx", "tflite", "--precision", "fp16",
                       "--artifacts", str(partial), "--to", str(tmp_path / "rel"))
    line = one_error_line(err)
    assert code == 2 and f"zoo export {VARIANT} --to tflite --precision fp16 --artifacts {partial}" in line
    (tmp_path / "file").write_text("x")
    for bad in (["--to", str(tmp_path / "file")], ["--to", str(tmp_path / "rel"), "--base-url", "ftp://host/x"]):
        code, _, err = run("publish", VARIANT, "--formats", "onnx", "--artifacts", str(exported), *bad)
        assert code == 2, err
        one_error_line(err)
    code, _, err = run("publish", VARIANT, "--formats", "onnxx", "--to", str(tmp_path / "rel"))
    assert code == 2 and "did you mean 'onnx'" in one_error_line(err)


# -- pull: the happy path ----------------------------------------------------------------------------

def test_pull_installs_verified_artifacts_usable_by_export(hub, tmp_path, run) -> None:
    out = tmp_path / "artifacts"
    code, stdout, err = run("pull", VARIANT, "--hub", hub.url, "--out", str(out), "--json", "-")
    assert code == 0, err
    rows = {r["item"]: r for r in json.loads(stdout)["pulled"]}
    assert set(rows) == {"weights", "onnx", "ncnn", "ncnn-fp16"}
    assert all(r["status"] == "downloaded" for r in rows.values())
    w = CATALOG.get(VARIANT).weights
    assert sha256_file(weights_path(w.sha256, w.file)) == w.sha256
    for item in ("onnx", "ncnn", "ncnn-fp16"):
        for root in (cache() / "artifacts", out):
            d = root / VARIANT / item
            assert check_files(d, read_manifest(d)) == []
    # identical files (the ncnn .param of both precisions) are fetched once
    assert len({h.path for h in hub.hits()}) == len(hub.hits())
    assert_artifact_valid(out / VARIANT / "ncnn", CATALOG.get(VARIANT))
    keys = keys_for([CATALOG.get(VARIANT)], FORMATS, ["fp32", "fp16"])
    assert {p.status for p in ensure(keys, out, CATALOG, refresh=True) if p.status != "skipped"} == {"reused"}  # zoo export finds them as its own
    hub.reset()
    code, stdout, err = run("pull", VARIANT, "--hub", hub.url, "--json", "-")
    assert code == 0 and {r["status"] for r in json.loads(stdout)["pulled"]} == {"cached"}
    assert [h.path for h in hub.hits()] == ["index.json"]


def test_format_and_precision_selection(hub, run) -> None:
    code, stdout, err = run("pull", VARIANT, "--hub", hub.url, "--format", "ncnn", "--precision", "fp16", "--json", "-")
    assert code == 0, err
    assert [r["item"] for r in json.loads(stdout)["pulled"]] == ["weights", "ncnn-fp16"]
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "tflite")
    assert code == 1 and "publishes no tflite artifact" in one_error_line(err) and "ncnn-fp16" in err
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "tflitee")
    assert code == 2 and "did you mean 'tflite'" in one_error_line(err)
    code, _, err = run("pull", "base-c12", "--hub", hub.url)
    assert code == 2 and "did you mean 'base-c128'" in one_error_line(err)
    code, _, err = run("pull", "fgaf3", "--hub", hub.url)
    assert code == 1 and "does not publish fgaf3" in one_error_line(err)


# -- pull: faults --------------------------------------------------------------------------------------

def test_dropped_connection_resumes_with_range(hub, run) -> None:
    hub.fault(ONNX, "drop")
    code, stdout, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx", "--json", "-")
    assert code == 0, err
    assert {r["item"]: r["status"] for r in json.loads(stdout)["pulled"]}["onnx"] == "resumed"
    first, second = hub.hits(ONNX)
    assert first.range is None and first.fault == "drop"
    assert second.range.startswith("bytes=") and second.range != "bytes=0-" and second.status == 206
    assert "resuming at byte" in err and "(HTTP 206, bytes " in err
    entry = index_entry(hub.state.root, ONNX)
    assert sha256_file(cache() / "artifacts" / VARIANT / "onnx" / "model.onnx") == entry["sha256"]
    assert not list((cache() / "tmp").glob("*.part"))


def test_interrupted_pull_leaves_nothing_visible_and_resumes_next_run(hub, run, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_HUB_RETRIES", "1")
    hub.fault(ONNX, "drop:0.7")
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx")
    assert code == 1 and "gave up after 1 attempts" in one_error_line(err)
    entry = index_entry(hub.state.root, ONNX)
    part = cache() / "tmp" / f"{entry['sha256']}.part"
    assert 0 < part.stat().st_size < entry["bytes"]
    assert not (cache() / "files" / entry["sha256"]).exists() and not (cache() / "artifacts" / VARIANT / "onnx").exists()
    kept = part.stat().st_size
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx")
    assert code == 0, err
    last = hub.hits(ONNX)[-1]
    assert (last.range, last.status) == (f"bytes={kept}-", 206) and not part.exists()


@pytest.mark.parametrize("second", ["norange", "badrange"])
def test_server_that_ignores_or_garbles_range_restarts_from_zero(hub, run, second) -> None:
    hub.fault(NCNN_BIN, "drop", second)
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "ncnn", "--precision", "fp32")
    assert code == 0, err
    statuses = [h.status for h in hub.hits(NCNN_BIN)]
    assert statuses == ([200, 200] if second == "norange" else [200, 206, 200])
    d = cache() / "artifacts" / VARIANT / "ncnn"
    assert check_files(d, read_manifest(d)) == []


def test_wrong_bytes_are_refused_and_deleted(hub, run) -> None:
    hub.fault(ONNX, "wrong", repeat=True)
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx")
    line = one_error_line(err)
    entry = index_entry(hub.state.root, ONNX)
    assert code == 1 and f"{VARIANT}/onnx/model.onnx: sha256 mismatch: expected {entry['sha256']}, got " in line
    actual = line.split(", got ")[1].split()[0]
    assert len(actual) == 64 and actual != entry["sha256"]
    assert len(hub.hits(ONNX)) == 1  # an integrity failure is not retried
    assert_nothing_visible(entry["sha256"])


def test_404_is_a_clear_error(hub, run) -> None:
    hub.fault(ONNX, "404")
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx")
    line = one_error_line(err)
    assert code == 1 and "HTTP 404" in line and f"{hub.url}/{ONNX}" in line
    assert len(hub.hits(ONNX)) == 1
    code, _, err = run("pull", VARIANT, "--hub", hub.url + "/nowhere")
    assert code == 1 and "index.json: HTTP 404" in one_error_line(err)


def test_500_is_retried_then_succeeds(hub, run) -> None:
    hub.fault(ONNX, "500", "503")
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx")
    assert code == 0, err
    assert [h.status for h in hub.hits(ONNX)] == [500, 503, 200]
    assert "HTTP 500" in err and "attempt 2 of 4" in err and "attempt 3 of 4" in err


def test_500_forever_gives_up_after_bounded_attempts(hub, run) -> None:
    hub.fault(ONNX, "500", repeat=True)
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx", "--retries", "3")
    assert code == 1 and "HTTP 500" in one_error_line(err) and "gave up after 3 attempts" in err
    assert len(hub.hits(ONNX)) == 3


def test_stalled_server_times_out(hub, run, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "0.4")
    hub.fault(ONNX, "stall", repeat=True)
    start = time.monotonic()
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx", "--retries", "2")
    elapsed = time.monotonic() - start
    line = one_error_line(err)
    assert code == 1 and "no data for 0.4s (timed out)" in line and "gave up after 2 attempts" in line
    assert elapsed < 4, elapsed
    assert [h.range is None for h in hub.hits(ONNX)] == [True, False]  # the retry asked for the rest


@pytest.mark.parametrize("fault", ["html", "html-body"])
def test_html_instead_of_the_file_is_refused(hub, run, fault) -> None:
    hub.fault(ONNX, fault, repeat=True)
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx")
    line = one_error_line(err)
    assert code == 1 and "served an HTML page" in line and "refused" in line
    assert_nothing_visible(index_entry(hub.state.root, ONNX)["sha256"])


def test_index_with_escaping_paths_is_refused(release, tmp_path, run, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "bad"
    shutil.copytree(release, bad)
    index = json.loads((bad / "index.json").read_text())
    index["variants"][VARIANT]["artifacts"][0]["files"][0]["url"] = "../../../etc/passwd"
    (bad / "index.json").write_text(json.dumps(index))
    with HubServer(bad) as srv:
        code, _, err = run("pull", VARIANT, "--hub", srv.url)
        assert code == 1 and "unsafe path '../../../etc/passwd'" in one_error_line(err)
        assert [h.path for h in srv.hits()] == ["index.json"]
    for unsafe in ("/etc/passwd", "a/../../b", "C:/x", "a\\b", "https://evil/x", "./a", "a//b", ""):
        with pytest.raises(ValueError):
            safe_relpath(unsafe)
    assert safe_relpath("artifacts/x/onnx/model.onnx") == "artifacts/x/onnx/model.onnx"
    index["variants"][VARIANT]["artifacts"][0]["files"][0]["url"] = "artifacts/base-c128/onnx/model.onnx"
    index["variants"][VARIANT]["artifacts"][0]["manifest"]["files"][0]["path"] = "../model.onnx"
    with pytest.raises(ZooError, match="unsafe path"):
        parse_index(json.dumps(index).encode(), "test")


def test_redirect_to_plain_http_elsewhere_is_refused(hub, run) -> None:
    hub.fault(ONNX, "redirect:http://example.com/model.onnx")
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx")
    assert code == 1 and "plain http to example.com refused" in one_error_line(err)
    assert_nothing_visible(index_entry(hub.state.root, ONNX)["sha256"])


def test_base_url_moves_the_files_elsewhere(hub, exported, tmp_path, run) -> None:
    meta = tmp_path / "meta"
    publish([CATALOG.get(VARIANT)], ["onnx"], ["fp32"], exported, meta, base_url=hub.url)
    for p in list(meta.iterdir()):
        if p.name != "index.json":
            shutil.rmtree(p)
    with HubServer(meta) as index_host:
        code, _, err = run("pull", VARIANT, "--hub", index_host.url + "/index.json")
        assert code == 0, err
        assert [h.path for h in index_host.hits()] == ["index.json"]
    assert ONNX in [h.path for h in hub.hits()]


def test_plain_http_only_on_loopback(run, monkeypatch) -> None:
    for key in HUB_ENV:
        monkeypatch.delenv(key, raising=False)
    code, _, err = run("pull", VARIANT, "--hub", "http://example.com/zoo")
    assert code == 2 and "plain http to example.com refused" in one_error_line(err) and "--allow-http" in err
    code, _, err = run("pull", VARIANT, "--hub", "file:///tmp/zoo")
    assert code == 2 and "'file:'" in one_error_line(err)
    assert resolve_hub("http://example.com/zoo", allow_http=True).allow_http
    assert resolve_hub("http://[::1]:8000/zoo").url and resolve_hub("https://example.com/zoo").url
    monkeypatch.setenv("ZOO_HUB", "ftp://example.com/zoo")
    with pytest.raises(UsageError, match="only https"):
        resolve_hub()


# -- offline, weights, concurrency, cache ----------------------------------------------------------

def test_offline_uses_only_the_cache_and_names_what_is_missing(hub, run, monkeypatch) -> None:
    code, _, err = run("pull", VARIANT, "--offline", "--format", "onnx")
    line = one_error_line(err)
    assert code == 1 and line.startswith("error: offline: not in the cache: base-c128 onnx (any precision)")
    w = CATALOG.get(VARIANT).weights
    assert sha256_file(weights_path(w.sha256, w.file)) == w.sha256  # reference weights regenerated offline
    assert run("pull", VARIANT, "--hub", hub.url)[0] == 0
    hub.reset()
    entry = index_entry(hub.state.root, NCNN_BIN)
    shutil.rmtree(cache() / "artifacts" / VARIANT / "ncnn")
    shutil.rmtree(cache() / "files" / entry["sha256"])
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    code, _, err = run("pull", VARIANT, "--hub", hub.url)
    line = one_error_line(err)
    assert code == 1 and f"{VARIANT} ncnn model.ncnn.bin (sha256 {entry['sha256']}, {entry['bytes']:,} bytes)" in line
    assert hub.hits() == []  # offline: no request at all
    code, stdout, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx", "--json", "-")
    assert code == 0 and {r["status"] for r in json.loads(stdout)["pulled"]} == {"cached"}, err


def test_export_on_a_fresh_cache_pulls_the_weights(hub, tmp_path, run, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_HUB", hub.url)
    code, _, err = run("export", VARIANT, "--to", "onnx", "--out", str(tmp_path / "out"))
    assert code == 0, err
    w = CATALOG.get(VARIANT).weights
    assert [h.status for h in hub.hits(f"weights/{VARIANT}/{w.file}")] == [200]
    assert sha256_file(weights_path(w.sha256, w.file)) == w.sha256


def test_weights_resolution_falls_back_or_fails_clearly(hub, monkeypatch) -> None:
    v = CATALOG.get(VARIANT)
    hub.fault(f"weights/{VARIANT}/{v.weights.file}", "500", repeat=True)
    cfg = HubConfig(url=hub.url, retries=2, backoff=0.01, timeout=5)
    path = ensure_weights(v, cfg)  # reference weights: the hub failed, so they are regenerated
    assert sha256_file(path) == v.weights.sha256 and len(hub.hits(f"weights/{VARIANT}/{v.weights.file}")) == 2
    provenance = v.weights.provenance.model_copy(update={"kind": "trained"})
    trained = v.model_copy(update={"name": "other", "weights": v.weights.model_copy(
        update={"provenance": provenance, "sha256": "cd" * 32})})
    with pytest.raises(WeightsError, match=f"not in the cache; .*hub {hub.url} does not serve them"):
        ensure_weights(trained, cfg)
    with pytest.raises(WeightsError, match=r"\(offline\)"):
        ensure_weights(trained, HubConfig(url=hub.url, offline=True))


def test_concurrent_pulls_from_two_processes(hub) -> None:
    hub.fault(ONNX, "slow:3", repeat=True)  # long enough for the two pulls to overlap
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [*ZOO, "pull", VARIANT, "--hub", hub.url, "--format", "onnx", "--json", "-"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert all({r["item"] for r in json.loads(out)["pulled"]} == {"weights", "onnx"} for out, _ in results)
    files = [h.path for h in hub.hits() if h.path != "index.json"]
    assert sorted(files) == sorted(set(files)) and ONNX in files  # every file fetched exactly once
    (onnx,), indexes = hub.hits(ONNX), hub.hits("index.json")
    assert len(indexes) == 2 and max(h.t for h in indexes) < onnx.t + 3  # both ran while it downloaded
    assert "another zoo process is fetching it; waiting" in "".join(err for _, err in results)
    d = cache() / "artifacts" / VARIANT / "onnx"
    assert check_files(d, read_manifest(d)) == []


def test_cache_list_and_remove(hub, run) -> None:
    assert run("pull", VARIANT, "--hub", hub.url)[0] == 0
    code, stdout, _ = run("cache", "list", "--json", "-")
    info = json.loads(stdout)
    (entry,) = info["variants"]
    assert entry["variant"] == VARIANT and [a["dir"] for a in entry["artifacts"]] == ["ncnn", "ncnn-fp16", "onnx"]
    assert entry["weights"]["file"] == f"{VARIANT}.safetensors"
    size = sum(p.stat().st_size for p in (cache() / "files").rglob("*") if p.is_file())
    assert entry["bytes"] == size + entry["weights"]["bytes"]  # hard links counted once
    code, stdout, _ = run("cache", "list", "--csv", "-")
    assert code == 0 and stdout.splitlines()[0].startswith("table,variant,weights,formats,size_mb,")
    code, _, err = run("cache", "remove", "base-c12")
    assert code == 2 and "did you mean 'base-c128'" in one_error_line(err)
    assert run("cache", "remove")[0] == 2
    code, stdout, _ = run("cache", "remove", VARIANT)
    assert code == 0 and f"removed {VARIANT}" in stdout
    assert json.loads(run("cache", "list", "--json", "-")[1])["variants"] == []
    assert not any((cache() / "files").iterdir())
    assert run("pull", VARIANT, "--hub", hub.url, "--format", "onnx")[0] == 0
    code, stdout, _ = run("cache", "remove", "--all")
    assert code == 0 and json.loads(run("cache", "list", "--json", "-")[1])["total_bytes"] == 0


@pytest.mark.slow
def test_every_format_round_trips(tmp_path, monkeypatch, run) -> None:
    """Publish base-c128 in every format and precision, pull it, run each artifact."""
    for key in HUB_ENV:
        monkeypatch.delenv(key, raising=False)
    src = tmp_path / "artifacts"
    keys = keys_for([CATALOG.get(VARIANT)], ["onnx", "mnn", "tflite", "ncnn"], ["fp32", "fp16"])
    assert all(p.status == "built" for p in ensure(keys, src, CATALOG) if p.status != "skipped")
    publish([CATALOG.get(VARIANT)], ["onnx", "mnn", "tflite", "ncnn"], ["fp32", "fp16"], src, tmp_path / "rel")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    with HubServer(tmp_path / "rel") as srv:
        srv.fault("artifacts/base-c128/tflite/model_float32.tflite", "drop")
        code, stdout, err = run("pull", VARIANT, "--hub", srv.url, "--out", str(tmp_path / "pulled"), "--json", "-")
    assert code == 0, err
    rows = json.loads(stdout)["pulled"]
    assert len(rows) == 8 and {r["item"]: r["status"] for r in rows}["tflite"] == "resumed"
    for r in rows[1:]:
        assert_artifact_valid(tmp_path / "pulled" / VARIANT / r["item"], CATALOG.get(VARIANT))
    digest = hashlib.sha256((tmp_path / "rel" / "index.json").read_bytes()).hexdigest()
    publish([CATALOG.get(VARIANT)], ["onnx", "mnn", "tflite", "ncnn"], ["fp32", "fp16"], src, tmp_path / "rel2")
    assert hashlib.sha256((tmp_path / "rel2" / "index.json").read_bytes()).hexdigest() == digest


# -- publish never deletes what is not a release; sizes are not retried ---------------------------

def _project_folder_not_a_release(dest: Path) -> None:
    (dest / "src").mkdir(parents=True)
    (dest / "index.json").write_text("{}")
    (dest / "src" / "main.py").write_text("x\n")


def _release_plus(extra: str):
    def make(dest: Path, release: Path) -> None:
        shutil.copytree(release, dest)
        if extra.endswith("/"):
            (dest / extra).mkdir()
        else:
            (dest / extra).write_text("my notes\n")
    return make


@pytest.mark.parametrize(("make", "named"), [
    (lambda dest, release: _project_folder_not_a_release(dest), "index.json is not a valid zoo release index"),
    (_release_plus("notes.txt"), "notes.txt is not part of the zoo release there"),
    (_release_plus(f"artifacts/{VARIANT}/onnx/notes.txt"), f"artifacts/{VARIANT}/onnx/notes.txt is not part"),
    (_release_plus("scratch/"), "scratch is not part of the zoo release there"),
], ids=["index-json-and-src", "extra-file", "extra-file-deep", "extra-dir"])
def test_publish_refuses_to_replace_what_is_not_exactly_a_release(exported, release, tmp_path, run, make, named) -> None:
    dest = tmp_path / "p"
    make(dest, release)
    before = tree(dest)
    code, _, err = run("publish", VARIANT, "--formats", "onnx", "--artifacts", str(exported), "--to", str(dest))
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"error: --to {dest}: ") and named in line and "refusing to overwrite" in line, line
    assert tree(dest) == before and sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_publish_onto_a_full_disk(exported, tmpfs, run) -> None:
    disk = tmpfs("disk", size="256k")
    code, _, err = run("publish", VARIANT, "--formats", "onnx", "--artifacts", str(exported), "--to", str(disk / "rel"))
    line = one_error_line(err)
    assert code == 1 and f"cannot write the release beside {disk / 'rel'}: No space left on device" in line, line
    assert list(disk.iterdir()) == []  # the partial tree was removed


def _declare_weights_size(release: Path, dest: Path, size) -> str:
    shutil.copytree(release, dest)
    index = json.loads((dest / "index.json").read_text())
    w = index["variants"][VARIANT]["weights"]
    w["bytes"] = size(w["bytes"])
    (dest / "index.json").write_text(json.dumps(index))
    return w["url"]


@pytest.mark.parametrize(("size", "message", "requests"), [
    (lambda n: 10**15, "the index declares 1,000,000,000,000,000 bytes, more than the", 0),
    (lambda n: n + 100, "(Content-Length), the index declares", 1),
    (lambda n: n - 100, "(Content-Length), the index declares", 1),
], ids=["absurd-size", "content-length-short", "content-length-long"])
def test_size_mismatch_is_not_retried(hub, release, tmp_path, run, size, message, requests) -> None:
    url = _declare_weights_size(release, tmp_path / "rel", size)
    with HubServer(tmp_path / "rel") as srv:
        start = time.monotonic()
        code, _, err = run("pull", VARIANT, "--hub", srv.url, "--format", "onnx")
        line = one_error_line(err)
        assert code == 1 and message in line and "attempt" not in err, err
        assert len(srv.hits(url)) == requests and time.monotonic() - start < 5
    assert not list((cache() / "tmp").glob("*.part"))


def test_download_larger_than_the_free_space_is_refused_before_fetching(hub, tmpfs, run, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmpfs("cache", size="512k")))
    code, _, err = run("pull", VARIANT, "--hub", hub.url, "--format", "onnx")
    line = one_error_line(err)
    assert code == 1 and "bytes in the cache" in line and "free" in line, line
    assert hub.hits(ONNX) == []


# -- the pull plan ----------------------------------------------------------------------------

def test_pull_plan_items_are_named_fields() -> None:
    from zoo.release import pull

    src = (REPO / "zoo" / "release" / "pull.py").read_text()
    assert [f.name for f in dataclasses.fields(pull.PullItem)] == ["variant", "item", "artifact", "files", "blobs"]
    assert "plan: list[tuple" not in src
