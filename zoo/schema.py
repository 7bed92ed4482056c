"""Pydantic schema of ``zoo.yaml``: every field of every variant is typed and checked on load.

Unknown keys are errors (``extra="forbid"``) so a typo never silently falls back to a default.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zoo.backends import FORMATS, PRECISIONS

#: an artifact format / precision: the names :mod:`zoo.backends` declares
Format = Literal[FORMATS]  # type: ignore[valid-type]
Precision = Literal[PRECISIONS]  # type: ignore[valid-type]
PositiveInt = Annotated[int, Field(gt=0)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
VARIANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackboneSpec(Strict):
    """Four stride-2 stages; ``channels[-1]`` is the backbone's output width."""

    channels: list[PositiveInt] = Field(min_length=4, max_length=4)
    blocks: list[Annotated[int, Field(ge=0)]] = Field(min_length=4, max_length=4)
    expansion: list[PositiveInt] = Field(min_length=4, max_length=4)


class FusionSpec(Strict):
    kind: Literal["base", "af", "faf", "gaf", "fgaf"]
    depth: Annotated[int, Field(ge=1, le=12)]
    heads: PositiveInt
    norm: Literal["layer", "batch"]
    ffn_hidden: PositiveInt


class HeadSpec(Strict):
    channels: PositiveInt
    branch_hidden: PositiveInt


class ArchSpec(Strict):
    backbone: BackboneSpec
    fusion: FusionSpec
    head: HeadSpec

    @property
    def width(self) -> int:
        return self.backbone.channels[-1]

    @model_validator(mode="after")
    def _consistent(self) -> "ArchSpec":
        if self.width % self.fusion.heads:
            raise ValueError(f"fusion.heads {self.fusion.heads} must divide backbone width {self.width}")
        if self.fusion.norm == "batch" and self.fusion.kind == "base":
            raise ValueError("fusion.norm 'batch' needs a pre-norm block kind, not 'base'")
        return self


class Distillation(Strict):
    teacher: str
    loss: str | None = None
    weight: float | None = None


class Training(Strict):
    pretrain: Literal["none", "mae", "mtr"]
    distillation: Distillation | None = None


class Reported(Strict):
    """The study's row exactly as in ``ablation.csv``."""

    row: PositiveInt
    block: str
    lasot_auc: float
    lasot_auc_superseded: list[float] = []
    note: str | None = None
    params_m: float
    macs_m: float
    speed_fps: float
    speed_1thread_fps: float


class Measured(Strict):
    """Figures computed from the model built from ``arch`` (checked by the test suite)."""

    params: PositiveInt
    macs: PositiveInt = Field(description="conv + linear MACs, the study's (thop) convention")
    macs_total: PositiveInt = Field(description="macs plus the attention matrix products")


class Preprocessing(Strict):
    color: Literal["RGB"]
    scale: float
    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[float] = Field(min_length=3, max_length=3)
    template_size: PositiveInt
    search_size: PositiveInt
    template_context: float = Field(gt=1)
    search_context: float = Field(gt=1)


class TensorSpec(Strict):
    name: str
    shape: list[PositiveInt]
    dtype: Literal["float32"]
    layout: Literal["NCHW"]
    description: str = ""


class IOSpec(Strict):
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)


class Tolerance(Strict):
    atol: float = Field(ge=0)
    rtol: float = Field(ge=0)


class Provenance(Strict):
    kind: Literal["reference", "trained"]
    description: str
    source: str | None = None
    seed: str | None = None
    registered: str | None = None


class WeightsSpec(Strict):
    file: str
    format: Literal["safetensors"]
    sha256: Sha256
    bytes: PositiveInt
    provenance: Provenance
    url: str | None = None

    @field_validator("file")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if "/" in v or "\\" in v or v.startswith(".") or not v.endswith(".safetensors"):
            raise ValueError("must be a plain file name ending in .safetensors")
        return v


class Variant(Strict):
    name: str
    description: str
    arch: ArchSpec
    training: Training
    reported: Reported | None
    measured: Measured
    preprocessing: Preprocessing
    io: IOSpec
    weights: WeightsSpec
    tolerances: dict[Format, dict[Precision, Tolerance]]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not VARIANT_NAME.match(v):
            raise ValueError("lower-case letters, digits and '-' only")
        return v

    @field_validator("tolerances")
    @classmethod
    def _fp32_everywhere(cls, v: dict) -> dict:
        missing = [f for f in FORMATS if "fp32" not in v.get(f, {})]
        if missing:
            raise ValueError(f"fp32 tolerance missing for {', '.join(missing)}")
        return v


class CatalogFile(Strict):
    schema_version: Literal[1]
    hub: str | None = None
    variants: list[Variant] = Field(min_length=1)
