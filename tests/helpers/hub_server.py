"""A static file server for hub tests: HTTP Range, a request log and per-path injected faults.

Faults are queued per path (relative to the served root) and each request to that path takes
the next one; ``repeat=True`` makes a fault stick. Kinds:

``drop[:F]``   send headers for the whole body, then a fraction F (default 0.5), then cut the connection
``500`` ``404`` ``503``   that status
``wrong``      the right length, wrong bytes
``html``       an HTML error page, ``Content-Type: text/html``, status 200
``html-body``  an HTML page labelled ``application/octet-stream``
``stall``      headers and 1 KiB, then silence (until the server stops)
``norange``    ignore a Range header (full body, 200)
``badrange``   answer a Range request with 206 but a Content-Range starting at 0
``slow[:S]``   send the body in 64 pieces over S seconds (default 1)
``redirect:URL``  answer 302 with ``Location: URL``

Standalone: ``python -m tests.helpers.hub_server ROOT [--port N] [--fault PATH=KIND[,KIND...]]...``
prints the URL and serves until interrupted, logging each request on stderr.
"""
from __future__ import annotations

import argparse
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in</body></html>\n"


@dataclass
class Hit:
    path: str
    range: str | None
    status: int
    fault: str | None
    t: float = field(default_factory=time.monotonic)


@dataclass
class State:
    root: Path
    faults: dict[str, list[str]] = field(default_factory=dict)
    sticky: dict[str, str] = field(default_factory=dict)
    log: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    verbose: bool = False

    def take(self, path: str) -> str | None:
        with self.lock:
            queue = self.faults.get(path)
            if queue:
                return queue.pop(0)
            return self.sticky.get(path)

    def record(self, hit: Hit) -> None:
        with self.lock:
            self.log.append(hit)
        if self.verbose:
            print(f"[hub] GET /{hit.path} range={hit.range} -> {hit.status} fault={hit.fault}", file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State  # set on the subclass per server

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/octet-stream", extra: dict | None = None,
              send_body: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        st = self.state
        rel = unquote(urlparse(self.path).path).lstrip("/")
        fault = st.take(rel)
        rng = self.headers.get("Range")
        target = (st.root / rel).resolve()
        inside = target.is_relative_to(st.root.resolve()) and target.is_file()
        if fault in ("404", "500", "503") or not inside:
            code = int(fault) if fault else 404
            st.record(Hit(rel, rng, code, fault))
            return self._send(code, f"{code}\n".encode(), "text/plain")
        if fault and fault.startswith("redirect:"):
            st.record(Hit(rel, rng, 302, fault))
            return self._send(302, b"", "text/plain", {"Location": fault.partition(":")[2]})
        if fault in ("html", "html-body"):
            st.record(Hit(rel, rng, 200, fault))
            return self._send(200, HTML_PAGE, "text/html; charset=utf-8" if fault == "html" else "application/octet-stream")
        data = target.read_bytes()
        if fault == "wrong":
            data = bytes(b ^ 0x5A for b in data[:64]) + data[64:]
        status, extra, body = 200, {"Accept-Ranges": "bytes"}, data
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and fault != "norange":
            start = int(m.group(1))
            if start >= len(data):
                st.record(Hit(rel, rng, 416, fault))
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
            shown = 0 if fault == "badrange" else start
            status, body = 206, data[start:]
            extra["Content-Range"] = f"bytes {shown}-{len(data) - 1}/{len(data)}"
        st.record(Hit(rel, rng, status, fault))
        self._send(status, body, extra=extra, send_body=False)
        kind, _, arg = (fault or "").partition(":")
        if kind == "drop":
            cut = int(len(body) * float(arg or 0.5))
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        elif kind == "stall":
            self.wfile.write(body[:1024])
            self.wfile.flush()
            st.stop.wait()
            self.close_connection = True
        elif kind == "slow":
            pieces = 64
            step = max(1, -(-len(body) // pieces))
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(float(arg or 1.0) / pieces)
        else:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up is no news
            super().handle_error(request, client_address)


class HubServer:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) in a daemon thread, serving ``root``."""

    def __init__(self, root: Path, port: int = 0, verbose: bool = False):
        self.state = State(Path(root), verbose=verbose)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = _Server(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def fault(self, path: str, *kinds: str, repeat: bool = False) -> None:
        """Queue faults for ``path`` (each request takes one), or make one stick with ``repeat``."""
        with self.state.lock:
            if repeat:
                self.state.sticky[path] = kinds[0]
            else:
                self.state.faults.setdefault(path, []).extend(kinds)

    def hits(self, path: str | None = None) -> list[Hit]:
        with self.state.lock:
            return [h for h in self.state.log if path is None or h.path == path]

    def reset(self) -> None:
        with self.state.lock:
            self.state.faults.clear()
            self.state.sticky.clear()
            self.state.log.clear()

    def __enter__(self) -> "HubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.state.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fault", action="append", default=[], metavar="PATH=KIND[,KIND...]")
    parser.add_argument("--repeat", action="store_true", help="faults stick instead of being used once")
    args = parser.parse_args()
    with HubServer(args.root, args.port, verbose=True) as server:
        for spec in args.fault:
            path, _, kinds = spec.partition("=")
            server.fault(path, *kinds.split(","), repeat=args.repeat)
        print(server.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
