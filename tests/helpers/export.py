"""Helpers shared by the export, compare, bench, profile and hub tests: the real CLI in a subprocess,
report rows, and the check that an installed artifact is intact and still matches PyTorch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from compare.runners import PytorchRunner, open_artifact
from zoo.artifacts import check_files
from zoo.manifest import read_manifest
from zoo.parity import compare_output
from zoo.sample_inputs import sample_pairs

ZOO = [sys.executable, "-c", "from zoo.cli import main; main()"]


def zoo(*args: str, timeout: float = 600, env: dict | None = None, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the real ``zoo`` CLI in a subprocess (``env`` added to this process's, ``unset`` removed)."""
    full_env = {k: v for k, v in os.environ.items() if k not in unset}
    full_env.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run([*ZOO, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def json_rows(path: Path) -> dict[tuple[str, str, str], dict]:
    rows = json.loads(Path(path).read_text())["artifacts"]
    return {(r["variant"], r["format"], r["precision"]): r for r in rows}


def assert_artifact_valid(artifact_dir: Path, variant, scene: int = 1) -> dict:
    """Manifest intact, every output of a fresh runner within tolerance on another input pair.

    ``scene`` picks a verification pair other than the one used at export, so a runner that
    mapped names or layouts wrongly cannot pass by coincidence. Returns the parity per output.
    """
    manifest = read_manifest(artifact_dir)
    assert check_files(artifact_dir, manifest) == []
    assert manifest.variant == variant.name and manifest.parity.passed
    assert [b.name for b in manifest.inputs] == [s.name for s in variant.io.inputs]
    assert [b.name for b in manifest.outputs] == [s.name for s in variant.io.outputs]
    inputs = sample_pairs(variant, scene + 1)[scene]
    with PytorchRunner(variant) as ref:
        expected = ref.infer(inputs)
    tol = variant.tolerances[manifest.format][manifest.precision]
    with open_artifact(artifact_dir, variant) as runner:
        actual = runner.infer(inputs)
        assert runner.last_inference_time is not None and runner.last_inference_time > 0
    figures = {}
    for spec in variant.io.outputs:
        assert actual[spec.name].shape == tuple(spec.shape)
        parity = compare_output(spec.name, actual[spec.name], expected[spec.name], tol.atol, tol.rtol)
        assert parity.passed, f"{artifact_dir}: {parity}"
        figures[spec.name] = parity
    assert not np.allclose(expected[variant.io.outputs[0].name], 0)
    return figures
