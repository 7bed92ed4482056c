"""The one door (compare.provision) and the artifact value it hands out (zoo.artifacts.ArtifactKey)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from safetensors.torch import save_file

import zoo
from compare import provision
from compare.devices.runner import device_runner
from compare.provision import ensure, keys_for, plan, runtime_keys
from compare.runners import open_artifact
from compare.tracking.evaluation import tracker_specs
from tests.helpers.catalog import CATALOG
from tests.helpers.cli import (
    copy_artifacts,
    one_line,
    onnx_export,  # noqa: F401 (fixture)
    run_main,
    zoo_as_user,
)
from zoo.artifacts import ArtifactKey, Status
from zoo.catalog import Catalog
from zoo.errors import ExportError, UsageError
from zoo.devices import parse_device
from zoo.manifest import CorruptArtifact, StaleArtifact
from zoo.paths import catalog_path
from zoo.register import register_checkpoint
from zoo.weights import load_model

VARIANT = "base-c128"


@pytest.mark.parametrize(("key", "dirname", "label"), [
    (ArtifactKey("fgaf3", "onnx"), "onnx", "onnxruntime"),
    (ArtifactKey("fgaf3", "mnn", "fp16"), "mnn-fp16", "mnn"),
    (ArtifactKey("fgaf3", "tflite", "int8", split=True), "tflite-int8-split", "tflite-split"),
    (ArtifactKey("fgaf3", "onnx", "fp32", "opencv"), "onnx-opencv", "onnxruntime"),
    (ArtifactKey.for_runtime("fgaf3", "pytorch"), "pytorch", "pytorch"),
])
def test_a_key_owns_its_directory_and_label(key, dirname, label, tmp_path) -> None:
    assert key.dirname == dirname and key.label == label
    assert key.path(tmp_path) == tmp_path / "fgaf3" / dirname
    assert key.name == f"fgaf3 {dirname}"


def test_keys_of_runtimes_and_their_sources() -> None:
    v = CATALOG.get(VARIANT)
    keys = runtime_keys([v], ["pytorch", "ncnn"], ["fp32", "fp16"], split=True)
    assert keys == [ArtifactKey(VARIANT, "pytorch"), ArtifactKey(VARIANT, "ncnn", "fp32", split=True),
                    ArtifactKey(VARIANT, "ncnn", "fp16", split=True)]
    assert all(k.source == ArtifactKey(VARIANT, "onnx", split=True) for k in keys[1:])
    # build order: the ONNX source first, then the formats in table order; unoffered precisions left out
    assert plan(keys_for([v], ["ncnn", "onnx"], ["fp16", "int8"])) == [
        ArtifactKey(VARIANT, "onnx"), ArtifactKey(VARIANT, "onnx", "int8"), ArtifactKey(VARIANT, "ncnn", "fp16")]
    with pytest.raises(UsageError, match="nothing to export"):
        plan(keys_for([v], ["mnn"], ["int8"]))
    with pytest.raises(UsageError, match="does not combine with --split"):
        keys_for([v], ["onnx"], ["fp32"], flavour="opencv", split=True)


def test_installed_artifacts_are_found_and_checked(exported, tmp_path) -> None:
    """Installed artifacts are handed out as found (nothing exported); an unoffered precision is
    skipped with a note; a corrupt one is refused naming the rebuild command."""
    keys = [ArtifactKey(VARIANT, "ncnn"), ArtifactKey(VARIANT, "mnn", "int8"), ArtifactKey.for_runtime(VARIANT, "pytorch")]
    got = ensure(keys, exported.out, CATALOG)
    assert [p.status for p in got] == [Status.FOUND, Status.SKIPPED, Status.FOUND]
    assert got[0].path == exported.path(VARIANT, "ncnn") and got[2].path is None
    assert "mnn offers fp32, fp16 only" in got[1].note
    mine = exported.copy(tmp_path / "art", VARIANT, "ncnn")
    (mine / VARIANT / "ncnn" / "model.ncnn.bin").write_bytes(b"\0" * 16)
    with pytest.raises(CorruptArtifact, match=r"zoo export base-c128 --to ncnn --precision fp32 .*--force"):
        ensure([ArtifactKey(VARIANT, "ncnn")], mine, CATALOG)


def test_export_uses_the_catalog_it_is_given(exported, tmp_path) -> None:
    """``zoo.export(..., catalog=X)``: a reduced precision's recipe comes from X, not from the default
    zoo.yaml (X renames the x86 ONNX int8 recipe, so its default target has none)."""
    text = catalog_path().read_text()
    assert "        x86:  # onnxruntime" in text
    other = tmp_path / "other.yaml"
    other.write_text(text.replace("        x86:  # onnxruntime", "        riscv:  # onnxruntime"))
    art = exported.copy(tmp_path / "art", VARIANT, "onnx")
    with pytest.raises(ExportError, match=r"no onnx int8 recipe for target 'x86' \(has riscv, arm\)"):
        zoo.export(VARIANT, "onnx", "int8", out=art, catalog=other)
    with pytest.raises(ExportError, match=r"has riscv, arm"):  # a loaded catalog too
        zoo.export(VARIANT, "onnx", "int8", out=art, catalog=Catalog.load(other))
    assert not (art / VARIANT / "onnx-int8").exists()


# -- installed artifacts broken or stale, seen through the CLI --------------------------------

def test_compare_refuses_a_corrupt_artifact_naming_the_file_and_the_fix(onnx_export, tmp_path):
    art = copy_artifacts(onnx_export, tmp_path / "art")
    model = art / VARIANT / "onnx" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the sha256 can tell
    model.write_bytes(bytes(data))
    proc = zoo_as_user("compare", VARIANT, "--runtimes", "onnxruntime", "--runs", "0", "--samples", "1", "--out", str(art))
    one_line(proc, 1, "model.onnx", "sha256", "zoo export base-c128 --to onnx", "--force")


def test_a_manifest_edited_away_from_the_catalog_is_refused_or_rebuilt(onnx_export, tmp_path):
    art = copy_artifacts(onnx_export, tmp_path / "art")
    path = art / VARIANT / "onnx" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["inputs"][1]["shape"] = [1, 3, 320, 320]
    path.write_text(json.dumps(manifest))
    one_line(zoo_as_user("compare", VARIANT, "--runtimes", "onnxruntime", "--runs", "0", "--samples", "1", "--out", str(art)),
             1, "search", "[1, 3, 320, 320]", "zoo.yaml")
    one_line(zoo_as_user("publish", VARIANT, "--formats", "onnx", "--artifacts", str(art), "--to", str(tmp_path / "rel")),
             1, "search", "zoo.yaml")
    assert not (tmp_path / "rel").exists()
    proc = zoo_as_user("export", VARIANT, "--to", "onnx", "--out", str(art), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)["artifacts"]
    assert row["status"] == "rebuilt" and "zoo.yaml" in row["note"]
    assert json.loads(path.read_text())["inputs"][1]["shape"] == [1, 3, 256, 256]


def test_every_path_gets_the_weights_through_the_catalogs_hub(tmp_path, monkeypatch) -> None:
    """The door materialises the weights with the hub of the catalog in use: ``zoo eval run`` and
    ``zoo.Tracker`` on PyTorch alone (no artifact to export) too, not only the commands that used to
    prime the weights themselves."""
    for name in ("ZOO_HUB", "ZOO_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    other = tmp_path / "zoo.yaml"
    other.write_text(catalog_path().read_text().replace("hub: null", "hub: http://127.0.0.1:9/release", 1))
    cat = Catalog.load(other)
    seen = []
    real = provision.ensure_weights

    def recording(variant, hub=None):
        seen.append((variant.name, hub.url if hub else None))
        return real(variant)  # the reference weights regenerate: nothing is fetched

    monkeypatch.setattr(provision, "ensure_weights", recording)
    specs, _ = tracker_specs(cat, [cat.get(VARIANT)], ["pytorch"], ["fp32"], tmp_path / "art")
    assert [s.key for s in specs] == [ArtifactKey.for_runtime(VARIANT, "pytorch")]
    zoo.Tracker(VARIANT, runtime="pytorch", catalog=cat).close()
    assert seen == [(VARIANT, "http://127.0.0.1:9/release")] * 2


def test_an_artifact_built_from_other_weights_is_refused_by_every_loader(exported, catalog_copy, tmp_path, capsys, monkeypatch) -> None:
    """After ``zoo register`` the installed artifacts hold the old weights: the door, the runners,
    a device runner and ``zoo track`` refuse them in one line naming the rebuild command."""
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in load_model(CATALOG.get(VARIANT)).state_dict().items()}
    save_file(state, str(tmp_path / "trained.safetensors"))
    register_checkpoint(Catalog.load(catalog_copy), VARIANT, tmp_path / "trained.safetensors", "a run")
    registered = Catalog.load(catalog_copy)
    mine = exported.copy(tmp_path / "art", VARIANT, "onnx")
    path = mine / VARIANT / "onnx"
    why = r"built from other weights \(sha256 [0-9a-f]{12}\) than the catalog's base-c128 .*zoo export base-c128 --to onnx"
    with pytest.raises(StaleArtifact, match=why):
        ensure([ArtifactKey(VARIANT, "onnx")], mine, registered)
    with pytest.raises(StaleArtifact, match=why):
        open_artifact(path, registered.get(VARIANT))
    with pytest.raises(StaleArtifact, match=why):
        device_runner(parse_device("ssh://nowhere.invalid"), path, registered.get(VARIANT))  # refused before connecting
    monkeypatch.setenv("ZOO_CATALOG", str(catalog_copy))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"{i:04d}.jpg"), np.full((120, 160, 3), 40 * i, np.uint8))
    code, _, err = run_main(capsys, monkeypatch, "track", VARIANT, str(frames), "--init", "40,30,30,30", "--runtime", "onnxruntime",
                            "--artifacts", str(mine))
    assert code == 1 and "built from other weights" in err and len(err.strip().splitlines()) == 1, err
