"""One file from a hub into the cache: resumable (HTTP Range), retried, verified, atomic.

httpx does the HTTP; tenacity retries transient failures (connection errors, timeouts, 5xx,
429) with exponential backoff and a bounded number of attempts. The bytes accumulate in
``<cache>/tmp/<sha256>.part``; a retry (or a later run) asks for the rest with
``Range: bytes=N-`` and appends only when the server answers 206 with a matching
``Content-Range`` (a 200 restarts from byte 0). The file is renamed into place only once its
size and sha256 match the index; a mismatch deletes the download. HTML served in place of a
file (``text/html`` or a body starting ``<!doctype`` / ``<html``) is refused. A size mismatch is
final, never retried: an index declaring more than :data:`MAX_FILE_BYTES` for a file, a
``Content-Length`` / ``Content-Range`` total that disagrees with the index, or more bytes than
declared. A download that cannot fit in the cache's free space is refused before it starts.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
from filelock import Timeout
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from zoo.errors import ZooError
from zoo.fileio import os_reason, sha256_file, verified_file
from zoo.hub.resolve import HubConfig, check_url
from zoo.hub.store import file_lock, part_path
from zoo.version import __version__

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
#: No single file of a release is larger (an index declaring more is refused before any request).
MAX_FILE_BYTES = 64 << 30


class DownloadError(ZooError):
    """A transfer failed for good (HTTP error, refused content, gave up retrying): exit 1."""


class CacheWriteError(DownloadError):
    """The cache refused the bytes (full, read-only): retrying or regenerating cannot help."""


class IntegrityError(DownloadError):
    """The bytes received are not the bytes the index pins."""


class Cancelled(DownloadError):
    """The pull was interrupted: :meth:`Transfer.cancel` stops every transfer at its next chunk."""


class _Transient(Exception):
    """A failure worth another attempt (the .part file keeps what arrived)."""


class Reporter:
    """Progress callbacks of a transfer; the CLI draws them, the default draws nothing."""

    def start(self, key: str, label: str, total: int, offset: int) -> None:
        """A file's transfer (re)starts at byte ``offset`` of ``total``."""

    def advance(self, key: str, nbytes: int) -> None:
        """``nbytes`` more bytes of ``key`` arrived."""

    def finish(self, key: str, status: str) -> None:
        """``key`` is done: downloaded, resumed, cached or failed."""

    def note(self, message: str) -> None:
        """Something worth a line (a retry, a resume)."""


@dataclass
class Outcome:
    """How a file got into the cache."""

    status: str  # cached | downloaded | resumed
    resumed_at: int = 0


def looks_like_html(head: bytes) -> bool:
    """A body that starts like an HTML page (an error or login page served with status 200)."""
    start = head.lstrip()[:16].lower()
    return start.startswith(b"<!doctype") or start.startswith(b"<html")


class Transfer:
    """An HTTP client for one pull: timeouts, redirects re-checked against the URL policy."""

    def __init__(self, cfg: HubConfig):
        self.cfg = cfg
        self.cancelled = threading.Event()
        self.client = httpx.Client(
            timeout=httpx.Timeout(cfg.timeout), follow_redirects=True,
            headers={"User-Agent": f"zoo/{__version__}", "Accept-Encoding": "identity"},
            event_hooks={"request": [self._check_request]},
        )

    def __enter__(self) -> "Transfer":
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def cancel(self) -> None:
        """Stop every transfer of this client at its next chunk (the .part files stay for a resume)."""
        self.cancelled.set()

    def _check_cancelled(self, label: str) -> None:
        if self.cancelled.is_set():
            raise Cancelled(f"{label}: cancelled")

    def _check_request(self, request: httpx.Request) -> None:  # every hop of a redirect too
        check_url(str(request.url), self.cfg.allow_http, what="URL", error=DownloadError)

    def _retrying(self, label: str, reporter: Reporter) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            reporter.note(f"{label}: {exc}; attempt {state.attempt_number + 1} of {self.cfg.retries} "
                          f"in {state.next_action.sleep:.1f}s")

        return Retrying(stop=stop_after_attempt(self.cfg.retries), reraise=True,
                        wait=wait_exponential(multiplier=self.cfg.backoff, max=8),
                        retry=retry_if_exception_type(_Transient), before_sleep=before_sleep)

    def _gave_up(self, label: str, url: str, exc: Exception) -> DownloadError:
        return DownloadError(f"{label}: GET {url}: {exc} (gave up after {self.cfg.retries} attempts)")

    def get_bytes(self, url: str, what: str, reporter: Reporter | None = None) -> bytes:
        """A small file (the index) in memory, with the same retries and HTML refusal."""
        reporter = reporter or Reporter()
        try:
            for attempt in self._retrying(what, reporter):
                with attempt:
                    try:
                        response = self.client.get(url)
                    except httpx.TimeoutException:
                        raise _Transient(f"no data for {self.cfg.timeout:g}s (timed out)") from None
                    except httpx.TransportError as exc:
                        raise _Transient(f"{type(exc).__name__}: {exc}") from None
                    self._check_status(response, url, what)
                    why = self._html_reason(response, response.content[:64])
                    if why:
                        raise DownloadError(f"{url} served an HTML page ({why}) instead of {what}: refused (is the hub URL right?)")
                    return response.content
        except _Transient as exc:
            raise self._gave_up(what, url, exc) from None
        raise AssertionError("unreachable")

    @staticmethod
    def _check_status(response: httpx.Response, url: str, what: str) -> None:
        code = response.status_code
        if code >= 500 or code in (408, 429):
            raise _Transient(f"HTTP {code} {response.reason_phrase}")
        if code >= 400 or code not in (200, 206):
            hint = " (not published on this hub?)" if code == 404 else ""
            raise DownloadError(f"{what}: HTTP {code} {response.reason_phrase} for {url}{hint}")

    @staticmethod
    def _html_reason(response: httpx.Response, head: bytes) -> str | None:
        """Why the response is an HTML page rather than the file, or None."""
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype in ("text/html", "application/xhtml+xml"):
            return f"content-type {ctype}"
        return "the body starts like an HTML page" if looks_like_html(head) else None

    def fetch(self, url: str, dest: Path, sha256: str, size: int, label: str,
              reporter: Reporter | None = None) -> Outcome:
        """Make ``dest`` hold the file with ``sha256`` (``size`` bytes) downloaded from ``url``.

        Holds the file's lock throughout, so a concurrent pull of the same file waits and then
        finds it installed. A verified ``dest`` is not fetched again (``cached``).
        """
        reporter = reporter or Reporter()
        self._check_cancelled(label)
        try:
            lock = file_lock(dest)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                reporter.note(f"{label}: another zoo process is fetching it; waiting for it")
                lock.acquire()
        except OSError as exc:
            raise CacheWriteError(f"{label}: cannot write the cache: {os_reason(exc)}") from None
        try:
            outcome = self._fetch_locked(url, dest, sha256, size, label, reporter)
        except BaseException as exc:
            reporter.finish(label, "failed")
            if isinstance(exc, OSError):
                raise CacheWriteError(f"{label}: cannot write the cache: {os_reason(exc)}") from None
            raise
        finally:
            lock.release()
        reporter.finish(label, outcome.status)
        return outcome

    def _fetch_locked(self, url: str, dest: Path, sha256: str, size: int, label: str, reporter: Reporter) -> Outcome:
        if verified_file(dest, sha256):
            return Outcome("cached")
        if size > MAX_FILE_BYTES:
            raise IntegrityError(f"{label}: the index declares {size:,} bytes, more than the {MAX_FILE_BYTES:,} "
                                 "zoo accepts for one file: refused (is the index corrupt?)")
        part = part_path(sha256)
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        free = shutil.disk_usage(part.parent).free
        if size - have > free:
            raise CacheWriteError(f"{label}: needs {size - have:,} bytes in the cache ({part.parent.parent}), "
                                  f"only {free:,} free")
        outcome = Outcome("downloaded")
        try:
            for attempt in self._retrying(label, reporter):
                with attempt:
                    self._attempt(url, part, size, label, reporter, outcome)
        except _Transient as exc:
            raise self._gave_up(label, url, exc) from None
        actual = sha256_file(part)
        if actual != sha256:
            part.unlink(missing_ok=True)
            raise IntegrityError(f"{label}: sha256 mismatch: expected {sha256}, got {actual} "
                                 f"(from {url}); the download was deleted")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(part, 0o644)
        os.replace(part, dest)
        return outcome

    def _attempt(self, url: str, part: Path, size: int, label: str, reporter: Reporter, outcome: Outcome) -> None:
        offset = part.stat().st_size if part.exists() else 0
        if offset > size:
            part.unlink()
            offset = 0
        if offset == size:
            return  # complete from an earlier attempt; the hash decides
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with self.client.stream("GET", url, headers=headers) as response:
                self._check_status(response, url, label)
                if offset and response.status_code == 206:
                    m = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
                    if m and m.group(3) != "*" and int(m.group(3)) != size:
                        part.unlink(missing_ok=True)
                        raise IntegrityError(f"{label}: the server's file has {int(m.group(3)):,} bytes (Content-Range), "
                                             f"the index declares {size:,}: size mismatch, not retried; the download was deleted")
                    if not m or int(m.group(1)) != offset:
                        part.unlink(missing_ok=True)
                        raise _Transient(f"server answered Range bytes={offset}- with Content-Range "
                                         f"{response.headers.get('content-range')!r}; restarting from byte 0")
                    outcome.status, outcome.resumed_at = "resumed", offset
                    reporter.note(f"{label}: resuming at byte {offset:,} of {size:,} (HTTP 206, {m.group(0)})")
                elif offset:
                    reporter.note(f"{label}: server ignored the Range request (HTTP {response.status_code}); restarting")
                    offset = 0
                self._receive(response, part, offset, size, label, reporter)
        except httpx.TimeoutException:
            raise _Transient(f"no data for {self.cfg.timeout:g}s (timed out)") from None
        except httpx.TransportError as exc:
            raise _Transient(f"connection failed: {type(exc).__name__}: {exc}") from None

    def _receive(self, response: httpx.Response, part: Path, offset: int, size: int, label: str,
                 reporter: Reporter) -> None:
        chunks = response.iter_bytes()  # as the bytes arrive: a stall keeps what came before it
        head = next(chunks, b"")
        why = self._html_reason(response, head if offset == 0 else b"")
        if why:
            raise DownloadError(f"{label}: {response.url} served an HTML page ({why}) instead of the file: refused")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) != size - offset:
            part.unlink(missing_ok=True)
            raise IntegrityError(f"{label}: the server sends {int(length) + offset:,} bytes (Content-Length), the index "
                                 f"declares {size:,}: size mismatch, not retried; the download was deleted")
        reporter.start(label, label, size, offset)
        received = offset
        with open(part, "ab" if offset else "wb") as f:
            for chunk in itertools.chain([head], chunks):
                self._check_cancelled(label)
                received += len(chunk)
                if received > size:
                    f.close()
                    part.unlink(missing_ok=True)
                    raise IntegrityError(f"{label}: the server sent more than the {size:,} bytes the index pins; "
                                         "the download was deleted")
                f.write(chunk)
                reporter.advance(label, len(chunk))
        if received < size:
            raise _Transient(f"connection closed after {received:,} of {size:,} bytes")
