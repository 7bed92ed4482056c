"""The catalog: ``zoo.yaml`` loaded, schema-checked and indexed by variant name.

One registry, no import side effects: :meth:`Catalog.load` reads the file when asked. Names
are unique (a duplicate is a load error), lookups of unknown names suggest close matches, and
:meth:`Catalog.select` accepts names, shell wildcards and ``all``.
"""
from __future__ import annotations

import fnmatch
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from zoo.errors import CatalogError, UsageError, ZooError
from zoo.fileio import atomic_write_bytes, os_reason
from zoo.names import did_you_mean  # noqa: F401  (re-exported)
from zoo.paths import catalog_path
from zoo.schema import CatalogFile, TrackingPreset, Variant


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 120
    y.indent(mapping=2, sequence=4, offset=2)
    y.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return y


def _describe(exc: ValidationError, raw: Any, path: Path) -> str:
    """First schema error as one line naming the entry and the field."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "variants" and isinstance(loc[1], int):
        entry = raw["variants"][loc[1]] if isinstance(raw.get("variants"), list) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"variant {name!r}" if name else f"variant #{loc[1] + 1}"
        loc = loc[2:]
    field = ".".join(str(p) for p in loc) or "(entry)"
    kind = err["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif kind == "missing":
        msg = "missing field"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        if "input" in err and not isinstance(err["input"], (dict, list)):
            msg += f" (got {err['input']!r})"
    more = len(exc.errors()) - 1
    suffix = f" (+{more} more error{'s' if more > 1 else ''})" if more else ""
    return f"{path.name}: {where + ': ' if where else ''}{field}: {msg}{suffix}"


def _read_raw(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"catalog not found: {path}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise CatalogError(f"{path.name}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at line {line}); "
                           "save it as UTF-8") from None
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from None
    try:
        return _yaml().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CatalogError(f"{path.name}: invalid YAML{at}: {problem}") from None


def _validate(raw: Any, path: Path) -> CatalogFile:
    if not isinstance(raw, dict):
        raise CatalogError(f"{path.name}: expected a mapping with 'schema_version' and 'variants'")
    names = [v.get("name") for v in raw.get("variants") or [] if isinstance(v, dict)]
    dupes = sorted({n for n in names if n is not None and names.count(n) > 1})
    if dupes:
        raise CatalogError(f"{path.name}: duplicate variant name {dupes[0]!r}: names must be unique")
    plain = _plain(raw, _Budget(path))
    try:
        return CatalogFile.model_validate(plain)
    except ValidationError as exc:
        raise CatalogError(_describe(exc, raw, path)) from None


#: Nodes a catalog may expand to once its aliases are followed (zoo.yaml: a few thousand).
MAX_NODES = 200_000
MAX_DEPTH = 64


class _Budget:
    """Counts the nodes :func:`_plain` builds, so an alias bomb ("billion laughs": anchors
    that alias anchors, each level multiplying the size) fails fast instead of hanging."""

    def __init__(self, path: Path):
        self.path, self.left = path, MAX_NODES

    def spend(self, n: int, depth: int) -> None:
        self.left -= n
        if self.left < 0:
            raise CatalogError(f"{self.path.name}: expands to more than {MAX_NODES:,} nodes through its "
                               "aliases (*name): refused (a YAML alias bomb?)")
        if depth > MAX_DEPTH:
            raise CatalogError(f"{self.path.name}: nested deeper than {MAX_DEPTH} levels (a recursive alias?): refused")


def _plain(node: Any, budget: _Budget, depth: int = 0) -> Any:
    """ruamel's commented containers -> plain dict/list (keeps pydantic's strict typing honest).

    Aliases are expanded here (ruamel shares the anchored object), within ``budget``.
    """
    budget.spend(1, depth)
    if isinstance(node, dict):
        budget.spend(len(node), depth)
        return {str(k): _plain(v, budget, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, budget, depth + 1) for v in node]
    return node


class Catalog:
    """Validated variants of one ``zoo.yaml``, in file order."""

    def __init__(self, data: CatalogFile, path: Path):
        self.path = path
        self.hub = data.hub
        self.tracking = data.tracking
        self.quantization = data.quantization
        self._variants = {v.name: v for v in data.variants}

    @classmethod
    def load(cls, path: Path | None = None) -> "Catalog":
        path = Path(path) if path else catalog_path()
        return cls(_validate(_read_raw(path), path), path)

    def __iter__(self) -> Iterator[Variant]:
        return iter(self._variants.values())

    def __len__(self) -> int:
        return len(self._variants)

    def __contains__(self, name: object) -> bool:
        return name in self._variants

    @property
    def names(self) -> list[str]:
        return list(self._variants)

    def get(self, name: str) -> Variant:
        """The variant called ``name``; an unknown name is a usage error with suggestions."""
        try:
            return self._variants[name]
        except KeyError:
            raise UsageError(f"unknown variant {name!r}{did_you_mean(name, self._variants)}") from None

    def preset_name(self, variant: str | Variant, preset: str | None = None) -> str:
        """The tracking preset of ``variant``: ``preset`` when given, else the variant's own, else the default."""
        v = self.get(variant) if isinstance(variant, str) else variant
        name = preset or v.tracking or self.tracking.default
        if name not in self.tracking.presets:
            raise UsageError(f"unknown tracking preset {name!r}{did_you_mean(name, self.tracking.presets)}; "
                             f"the catalog defines {', '.join(self.tracking.presets)}")
        return name

    def preset(self, variant: str | Variant, preset: str | None = None) -> TrackingPreset:
        """The :class:`zoo.schema.TrackingPreset` of ``variant`` (see :meth:`preset_name`)."""
        return self.tracking.presets[self.preset_name(variant, preset)]

    def select(self, patterns: Iterable[str]) -> list[Variant]:
        """Variants matching names, wildcards (``fgaf*``) or ``all``, in catalog order, once each."""
        chosen: set[str] = set()
        for pattern in patterns:
            if pattern == "all":
                chosen.update(self._variants)
            elif any(ch in pattern for ch in "*?["):
                hits = fnmatch.filter(self._variants, pattern)
                if not hits:
                    raise UsageError(f"no variant matches {pattern!r}")
                chosen.update(hits)
            else:
                chosen.add(self.get(pattern).name)
        return [v for name, v in self._variants.items() if name in chosen]


def update_variant(path: Path, name: str, changes: dict[str, Any]) -> Catalog:
    """Set fields of one variant in ``zoo.yaml`` (dotted keys reach into mappings, e.g.
    ``weights.sha256``), keeping comments, anchors and layout.

    The edited text is validated before it atomically replaces the file; a lock serialises
    concurrent edits. A file system that refuses the write (read-only, full) is one line, exit 1.
    """
    try:
        return _update_variant(path, name, changes)
    except OSError as exc:
        raise ZooError(f"cannot update the catalog {path}: {os_reason(exc)}; it was left unchanged") from None


def _update_variant(path: Path, name: str, changes: dict[str, Any]) -> Catalog:
    with FileLock(str(path) + ".lock"):
        raw = _read_raw(path)
        entry = next((v for v in raw.get("variants", []) if isinstance(v, dict) and v.get("name") == name), None)
        if entry is None:
            raise UsageError(f"unknown variant {name!r}")
        for key, value in changes.items():
            *parents, leaf = key.split(".")
            node = entry
            for part in parents:
                node = node[part]
            node[leaf] = value
        buf = io.StringIO()
        _yaml().dump(raw, buf)
        text = buf.getvalue()
        catalog = Catalog(_validate(_yaml().load(text), path), path)
        atomic_write_bytes(path, text.encode("utf-8"))
    return catalog
