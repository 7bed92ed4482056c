"""Which hub, whether to go online, and which URLs may be fetched at all.

The hub is ``--hub`` > ``$ZOO_HUB`` > ``hub:`` in ``zoo.yaml``; ``--offline`` or
``ZOO_OFFLINE=1`` keeps everything to the cache. Only ``https://`` is fetched, plus plain
``http://`` to a loopback host (or anywhere with ``--allow-http`` / ``ZOO_ALLOW_HTTP=1``);
``file:`` and other schemes are refused. Transfer settings (read timeout, attempts, backoff)
come from options or ``ZOO_HUB_TIMEOUT`` / ``ZOO_HUB_RETRIES`` / ``ZOO_HUB_BACKOFF``.
"""
from __future__ import annotations

import math
import os
import posixpath
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from zoo.errors import UsageError, ZooError

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
INDEX_NAME = "index.json"
_TRUE = {"1", "true", "yes", "on"}


def env_flag(name: str) -> bool:
    """An environment switch such as ``ZOO_OFFLINE=1`` (1/true/yes/on)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def _env_number(name: str, default: float, kind=float, limit: float = 86400) -> float:
    """A positive, finite number from the environment (at most ``limit``), else ``default``.

    ``nan`` and ``inf`` are refused: they pass a ``> 0`` check (or fail it silently) and end in
    an overflow deep inside the HTTP client.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{name}={raw!r} is not a finite number")
    if value <= 0:
        raise UsageError(f"{name}={raw!r} must be positive")
    if value > limit:
        raise UsageError(f"{name}={raw!r} is too large (at most {limit:g})")
    return value


@dataclass(frozen=True)
class HubConfig:
    """Where to pull from and how: ``url`` is the release directory (or its index.json)."""

    url: str | None
    offline: bool = False
    allow_http: bool = False
    timeout: float = 30.0  # seconds without a byte before a connection counts as stalled
    retries: int = 5  # attempts per file, the first included
    backoff: float = 0.5  # first wait between attempts (doubles, capped at 8 s)

    @property
    def index_url(self) -> str:
        """URL of the hub's ``index.json``."""
        if self.url is None:
            raise UsageError("no hub configured: pass --hub URL, set ZOO_HUB, or set 'hub:' in zoo.yaml")
        return self.url if self.url.endswith(".json") else self.url.rstrip("/") + "/" + INDEX_NAME


def resolve_hub(hub: str | None = None, catalog_hub: str | None = None, offline: bool = False,
                allow_http: bool = False, timeout: float | None = None, retries: int | None = None) -> HubConfig:
    """The hub settings in force: arguments first, then the environment, then ``zoo.yaml``.

    A hub URL that may not be fetched (scheme, plain http to a remote host) is a usage error.
    """
    url = hub or os.environ.get("ZOO_HUB") or catalog_hub or None
    allow = allow_http or env_flag("ZOO_ALLOW_HTTP")
    if url:
        check_url(url, allow, what="hub URL", error=UsageError)
    return HubConfig(
        url=url, offline=offline or env_flag("ZOO_OFFLINE"), allow_http=allow,
        timeout=_checked("timeout", timeout) or _env_number("ZOO_HUB_TIMEOUT", 30.0),
        retries=retries or int(_env_number("ZOO_HUB_RETRIES", 5, int, limit=100)),
        backoff=_env_number("ZOO_HUB_BACKOFF", 0.5, limit=60),
    )


def _checked(what: str, value: float | None) -> float | None:
    """``value`` unless it is NaN, infinite or not positive (callers other than the CLI)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{what} must be a positive finite number, got {value!r}")
    return value


def check_url(url: str, allow_http: bool, what: str = "URL", error: type[ZooError] = ZooError) -> str:
    """Return ``url`` if it may be fetched: https anywhere, http on loopback (or when allowed)."""
    try:
        parsed = httpx.URL(url)
    except Exception as exc:  # httpx.InvalidURL and friends
        raise error(f"invalid {what} {url!r}: {exc}") from None
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"'{scheme}:'" if scheme else "no scheme"
        raise error(f"{what} {url!r} has {shown}: only https:// (or http:// to a loopback host) is supported")
    if not parsed.host:
        raise error(f"invalid {what} {url!r}: no host")
    if scheme == "http" and parsed.host.lower() not in LOOPBACK and not allow_http:
        raise error(f"plain http to {parsed.host} refused for {what} {url!r}: use https, "
                    "or pass --allow-http (ZOO_ALLOW_HTTP=1) to accept unencrypted transfers")
    return url


def safe_relpath(path: str) -> str:
    """``path`` if it is a plain relative POSIX path inside its root, else ``ValueError``.

    Used for every path and URL an index names: no absolute paths, drive letters, schemes,
    backslashes, ``..`` or empty segments, no query or fragment.
    """
    if not path or path.startswith("/") or "\\" in path or ":" in path or "?" in path or "#" in path:
        raise ValueError(f"unsafe path {path!r}: must be relative, without scheme, query or backslashes")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or posixpath.normpath(path) != path:
        raise ValueError(f"unsafe path {path!r}: '..', '.' and empty segments are not allowed")
    return path


def file_url(base: str, relative: str) -> str:
    """Absolute URL of an index entry: ``relative`` (already checked) under directory ``base``."""
    return base.rstrip("/") + "/" + quote(relative, safe="/")


def base_url(cfg: HubConfig, index_base: str | None) -> str:
    """Where the files of a release live: the index's ``base_url`` or the index's directory."""
    if index_base:
        return check_url(index_base, cfg.allow_http, what="base_url of the hub index")
    return cfg.index_url.rsplit("/", 1)[0]
