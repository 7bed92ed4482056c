"""zoo export, slow tier: every catalog variant to every format and precision, verified."""
from __future__ import annotations

import pytest

from tests.helpers.catalog import CATALOG
from tests.helpers.export import assert_artifact_valid, json_rows, zoo
from zoo.backends import FORMATS, REDUCED_PRECISIONS, offered

OFFERED = [(f, p) for f in FORMATS for p in offered(f) if p not in REDUCED_PRECISIONS]  # reduced: test_quantization.py


@pytest.mark.slow
@pytest.mark.parametrize("name", CATALOG.names)
def test_every_variant_exports_and_verifies(name: str, tmp_path) -> None:
    report = tmp_path / "rows.json"
    proc = zoo("export", name, "--to", *FORMATS, "--precision", "fp32", "fp16", "--out", str(tmp_path / "art"),
               "--json", str(report), timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json_rows(report)
    variant = CATALOG.get(name)
    for fmt, precision in OFFERED:
        row = rows[(name, fmt, precision)]
        assert row["status"] == "built", row
        assert_artifact_valid(tmp_path / "art" / name / (fmt if precision == "fp32" else f"{fmt}-{precision}"), variant, scene=3)
