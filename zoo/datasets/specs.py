"""The benchmarks zoo evaluates on, their official test splits and attribute lists."""
from __future__ import annotations

from importlib import resources

from zoo.catalog import did_you_mean
from zoo.datasets.sequence import DatasetSpec
from zoo.errors import UsageError

# The LaSOT toolkit's attribute order (annos/att/<seq>.txt, 14 values per sequence).
LASOT_ATTRIBUTES = (
    ("IV", "Illumination Variation"), ("POC", "Partial Occlusion"), ("DEF", "Deformation"),
    ("MB", "Motion Blur"), ("CM", "Camera Motion"), ("ROT", "Rotation"), ("BC", "Background Clutter"),
    ("VC", "Viewpoint Change"), ("SV", "Scale Variation"), ("FOC", "Full Occlusion"), ("FM", "Fast Motion"),
    ("OV", "Out-of-View"), ("LR", "Low Resolution"), ("ARC", "Aspect Ratio Change"),
)
# The TNL2K toolkit's attribute order (att/<seq>_attribute.txt, 17 values per sequence).
TNL2K_ATTRIBUTES = (
    ("CM", "Camera Motion"), ("ROT", "Rotation"), ("DEF", "Deformation"), ("FOC", "Full Occlusion"),
    ("IV", "Illumination Variation"), ("OV", "Out-of-View"), ("POC", "Partial Occlusion"),
    ("VC", "Viewpoint Change"), ("SV", "Scale Variation"), ("BC", "Background Clutter"), ("MB", "Motion Blur"),
    ("ARC", "Aspect Ratio Change"), ("LR", "Low Resolution"), ("FM", "Fast Motion"), ("AS", "Adversarial Samples"),
    ("TC", "Thermal Crossover"), ("MS", "Modality Switch"),
)

DATASETS: dict[str, DatasetSpec] = {
    "lasot": DatasetSpec("lasot", "LaSOT", "lasot_test.txt", "lasot", True, LASOT_ATTRIBUTES),
    # pytracking names this dataset 'lasot_extension_subset': not the 'lasot' rule.
    "lasot_ext": DatasetSpec("lasot_ext", "LaSOT_ext", "lasot_extension_subset.txt", "default", True, LASOT_ATTRIBUTES),
    # pytracking-derived TNL2K readers load no visibility labels.
    "tnl2k": DatasetSpec("tnl2k", "TNL2K", "tnl2k_test.txt", "default", False, TNL2K_ATTRIBUTES, "_attribute"),
    "otb": DatasetSpec("otb", "OTB", None, "default", False),
}
ALIASES = {
    "lasot_test": "lasot", "lasot_extension_subset": "lasot_ext", "lasotext": "lasot_ext", "lasot-ext": "lasot_ext",
    "lasot_extension": "lasot_ext", "tnl-2k": "tnl2k", "otb100": "otb", "otb2015": "otb", "otb-100": "otb",
    "otb-2015": "otb",
}


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of a dataset name or alias (case-insensitive); unknown names: UsageError with a suggestion."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}{did_you_mean(key, [*DATASETS, *ALIASES])}; "
                         f"choose from {', '.join(DATASETS)}")
    return DATASETS[key]


def split_names(spec: DatasetSpec) -> list[str] | None:
    """The official test-set sequence list shipped with zoo (``None``: every annotated sequence)."""
    if spec.split is None:
        return None
    text = resources.files("zoo.datasets").joinpath("splits", spec.split).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]
