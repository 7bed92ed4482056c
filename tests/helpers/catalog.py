"""The catalog as the tests see it, and where the repository and the vendored test data are."""
from __future__ import annotations

from pathlib import Path

from zoo.catalog import Catalog

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
CATALOG = Catalog.load()
VARIANTS = CATALOG.names
REPORTED = [v.name for v in CATALOG if v.reported is not None]
#: the default tier's export / compare / profile variants: the baseline and the study's pick
DEFAULT_VARIANTS = ["base-c128", "fgaf3"]
