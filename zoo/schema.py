"""Pydantic schema of ``zoo.yaml``: every field of every variant is typed and checked on load.

Unknown keys are errors (``extra="forbid"``) so a typo never silently falls back to a default.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zoo.backends import FORMATS, PRECISIONS
from zoo.devices import BASE_FAMILY, FAMILIES
from zoo.errors import ZooError

#: an artifact format / precision: the names :mod:`zoo.backends` declares
Format = Literal[FORMATS]  # type: ignore[valid-type]
Precision = Literal[PRECISIONS]  # type: ignore[valid-type]
#: a CPU family (:data:`zoo.devices.FAMILIES`)
Family = Literal[FAMILIES]  # type: ignore[valid-type]
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
    #: NCHW for images and maps; NLC (batch, tokens, channels) for a split artifact's cache tensors
    layout: Literal["NCHW", "NLC"]
    description: str = ""


class IOSpec(Strict):
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)


class TrackerGate(Strict):
    """Tracker-level verification of a reduced precision (int8 error is 0.05-0.2 by nature):
    on ``pairs`` held-out pairs, the share whose score-map peak cell equals float32 PyTorch's,
    counted over pairs where float32's top-two gap is >= ``min_gap``, and the mean IoU of the
    decoded boxes. The export fails below ``peak_agreement`` or ``mean_iou``."""

    pairs: Annotated[int, Field(ge=8)] = 64
    min_gap: float = Field(0.05, ge=0)
    peak_agreement: float = Field(ge=0, le=1)
    #: the same share over every pair (flat maps included): a floor that still catches a broken model
    #: when few pairs have a clear peak
    peak_agreement_all: float = Field(0.0, ge=0, le=1)
    mean_iou: float = Field(ge=0, le=1)


class FamilyTolerance(Strict):
    """The element-wise allowance on one CPU family, where its kernels differ (ARMv8.2's fp16 arithmetic)."""

    atol: float = Field(ge=0)
    rtol: float = Field(ge=0)
    #: how the figure was obtained (the benchmark command and what it measured)
    measured: str | None = None


class Tolerance(Strict):
    """``atol``/``rtol`` hold on x86-64 (:data:`zoo.devices.BASE_FAMILY`); ``families`` overrides them
    for a CPU family whose kernels compute differently."""

    atol: float = Field(ge=0)
    rtol: float = Field(ge=0)
    #: reduced precisions: the gate is tracker-level; atol/rtol are then reported, not enforced
    tracker: TrackerGate | None = None
    families: dict[Family, FamilyTolerance] = Field(default_factory=dict)

    def on(self, family: str = BASE_FAMILY) -> "Tolerance":
        """This tolerance as it holds on CPU ``family`` (the family's atol/rtol where declared)."""
        if family not in FAMILIES:
            raise ZooError(f"unknown CPU family {family!r}; zoo.yaml knows {', '.join(FAMILIES)}")
        own = self.families.get(family)
        return self if own is None else self.model_copy(update={"atol": own.atol, "rtol": own.rtol})


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


class CropRule(Strict):
    """How a square crop is cut around a box and brought to the network's input size.

    ``side``: ``ceil`` = ``ceil(sqrt(w*h) * factor)`` (OSTrack's ``sample_target``, OpenCV's ``crop_image``).
    ``origin``: the crop's integer top-left: ``center_round`` = ``round(cx - side/2)`` with Python's
    round-half-to-even (OSTrack); ``box_trunc`` = ``x + trunc((w - side) / 2)`` (C++ integer division,
    OpenCV's TrackerVit). ``exclusive_edge``: a crop reaching the frame's right/bottom edge pads the
    last column/row instead of copying it (``max(x2 - W + 1, 0)`` in both implementations).
    ``padding``: outside the frame, ``zero`` (OSTrack) or the frame's ``mean`` colour.
    ``interpolation``: resize of the padded crop to the network's size (``linear`` = cv2.INTER_LINEAR).
    """

    template_factor: float = Field(gt=0)
    search_factor: float = Field(gt=0)
    side: Literal["ceil"] = "ceil"
    origin: Literal["center_round", "box_trunc"] = "center_round"
    exclusive_edge: bool = True
    padding: Literal["zero", "mean"] = "zero"
    interpolation: Literal["linear", "nearest", "area", "cubic"] = "linear"


class InputRule(Strict):
    """What the network is fed: channel order, then ``(pixel * scale - mean) / std`` per channel."""

    color: Literal["RGB", "BGR"] = "RGB"
    scale: float = Field(gt=0)
    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[float] = Field(min_length=3, max_length=3)

    @field_validator("std")
    @classmethod
    def _nonzero(cls, v: list[float]) -> list[float]:
        if any(s == 0 for s in v):
            raise ValueError("std must not be 0")
        return v


class DecodeRule(Strict):
    """Score map -> box.

    ``window``: ``hann`` multiplies the score map by the outer product of two n-point windows
    ``0.5*(1 - cos(2*pi*k/(n+1)))``, k = 1..n, before the argmax; ``none`` leaves it.
    ``rule``: ``peak_offset`` = at the peak cell (row, col): centre ``((col + offset_x)/n, (row + offset_y)/n)``
    and size ``(size_w, size_h)``, as fractions of the search crop.
    ``map_origin``: the crop's top-left used to map back to the frame: ``previous_center`` =
    previous centre minus half the mapping side (OSTrack's ``map_box_back``), ``crop_rule`` = the
    crop's origin rule applied to the mapping side (the integer top-left the crop was cut at when
    the sides agree; OpenCV). ``map_side``: ``crop`` = the crop's side,
    ``factor_floor_sqrt`` = ``factor * floor(sqrt(w*h))`` (OpenCV's ``returnfromcrop``).
    ``score``: the score reported per frame: the network's at the peak (``raw``) or after the window.
    """

    window: Literal["hann", "none"] = "hann"
    rule: Literal["peak_offset"] = "peak_offset"
    map_origin: Literal["previous_center", "crop_rule"] = "previous_center"
    map_side: Literal["crop", "factor_floor_sqrt"] = "crop"
    score: Literal["raw", "windowed"] = "raw"


class StateRule(Strict):
    """What the tracker keeps between frames.

    ``clip_margin``: clip the box to the frame keeping at least this many pixels (OSTrack's
    ``clip_box(..., margin=10)``); ``null`` = no clipping. ``rounding``: ``none`` keeps float boxes
    (OSTrack), ``floor`` integer boxes (OpenCV's ``Rect``). ``score_threshold``: below it the
    frame's answer is dropped and the previous box kept (``null``: always accept).
    """

    clip_margin: Annotated[float, Field(ge=0)] | None = 10
    rounding: Literal["none", "floor"] = "none"
    score_threshold: float | None = None


class TrackingPreset(Strict):
    """Every rule of the tracker loop for one family of checkpoints (see ``zoo.tracking``)."""

    description: str
    crop: CropRule
    input: InputRule
    decode: DecodeRule = DecodeRule()
    state: StateRule = StateRule()


class TrackingSpec(Strict):
    """``tracking:`` in ``zoo.yaml``: named presets and the one every variant uses by default."""

    default: str
    presets: dict[str, TrackingPreset] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_exists(self) -> "TrackingSpec":
        if self.default not in self.presets:
            raise ValueError(f"default preset {self.default!r} is not among the presets ({', '.join(self.presets)})")
        return self


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
    #: the tracking preset this variant's checkpoint was trained with (``null``: the catalog's default)
    tracking: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not VARIANT_NAME.match(v):
            raise ValueError("lower-case letters, digits and '-' only")
        return v

    def tolerance(self, fmt: str, precision: str, family: str = BASE_FAMILY) -> Tolerance:
        """The catalog's tolerance of this variant's ``fmt`` artifact at ``precision`` on CPU ``family``
        (the one lookup every check uses); a :class:`zoo.errors.ZooError` naming what ``zoo.yaml`` lacks."""
        tol = self.tolerances.get(fmt, {}).get(precision)
        if tol is None:
            raise ZooError(f"zoo.yaml has no {fmt} {precision} tolerance for {self.name}")
        return tol.on(family)

    @field_validator("tolerances")
    @classmethod
    def _fp32_everywhere(cls, v: dict) -> dict:
        missing = [f for f in FORMATS if "fp32" not in v.get(f, {})]
        if missing:
            raise ValueError(f"fp32 tolerance missing for {', '.join(missing)}")
        return v


class QuantRecipe(Strict):
    """How one format reaches one reduced precision (read by its exporter; recorded in the manifest).

    ``method``: ``static`` (calibrated activation ranges), ``dynamic`` (int8 weights, activations
    quantized at run time) or ``storage`` (weights/activations stored in the type, no calibration).
    ``keep_float``: op kinds left in float, in the format's own op names; ``MatMul:activations``
    names matrix products between two activations (attention), as opposed to weight MatMuls.
    ``hardware``: what the recipe targets (ONNX Runtime: U8S8 for x86 VNNI, S8S8 for ARM dot-product).
    TFLite only: ``float_passthrough`` names op kinds (e.g. RESHAPE, ADD) kept float wherever every
    non-constant input comes from a float op, so a float region (an attention product, its softmax
    and the reshapes between) is not cut into quantize/dequantize round trips; ``min_weight_elements``
    leaves weights with fewer elements in float (TFLiteConverter's dynamic-range default is 1024).
    """

    method: Literal["static", "dynamic", "storage"]
    activations: Literal["uint8", "int8", "float32", "bfloat16"]
    weights: Literal["int8", "bfloat16"]
    per_channel: bool = True
    keep_float: list[str] = []
    io: Literal["float32"] = "float32"
    hardware: str = ""
    calibration_method: Literal["minmax", "none"] = "minmax"
    float_passthrough: list[str] = []
    min_weight_elements: Annotated[int, Field(ge=0)] = 0


#: recipe fields only the TFLite exporter reads (another format's recipe naming them is refused)
TFLITE_ONLY_RECIPE_FIELDS = ("float_passthrough", "min_weight_elements")


class QuantizationSpec(Strict):
    """``quantization:`` in ``zoo.yaml``: calibration data and per-format recipes of reduced precisions.

    ``recipes[format][precision][target]``: ``target`` is ``--int8-target`` (``x86``, ``arm``) or
    ``any`` for a recipe that serves every target."""

    calibration_pairs: Annotated[int, Field(ge=64)] = 64
    jitter_shift: float = Field(0.3, ge=0, description="search crop centre jitter, fraction of the box's side")
    jitter_scale: float = Field(0.2, ge=0, description="search crop log-scale jitter")
    default_target: str = "x86"
    recipes: dict[Format, dict[Precision, dict[str, QuantRecipe]]]

    @model_validator(mode="after")
    def _tflite_only_fields(self) -> "QuantizationSpec":
        for fmt, by_precision in self.recipes.items():
            for precision, by_target in by_precision.items():
                for target, recipe in by_target.items():
                    named = [f for f in TFLITE_ONLY_RECIPE_FIELDS if getattr(recipe, f) != QuantRecipe.model_fields[f].get_default()]
                    if fmt != "tflite" and named:
                        raise ValueError(f"recipes.{fmt}.{precision}.{target}: {', '.join(named)} is read by the TFLite exporter only")
        return self


class CatalogFile(Strict):
    schema_version: Literal[1]
    hub: str | None = None
    tracking: TrackingSpec
    quantization: QuantizationSpec | None = None
    variants: list[Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_presets(self) -> "CatalogFile":
        for v in self.variants:
            if v.tracking is not None and v.tracking not in self.tracking.presets:
                raise ValueError(f"variant {v.name!r}: tracking preset {v.tracking!r} is not defined under tracking.presets "
                                 f"({', '.join(self.tracking.presets)})")
        return self
