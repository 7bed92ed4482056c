"""A ``--ray`` address, checked before any work: its form (a usage error, exit 2) and, for a
cluster address, that something listens there (one line, exit 1) — Ray itself would otherwise
retry for minutes while its C++ client prints ``gcs_client`` lines on the terminal.
"""
from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from zoo.errors import UsageError, ZooError

#: the forms ``--ray`` takes, as its error messages list them
FORMS = "'local', 'auto', HOST:PORT (the head's GCS port, 6379 by default) or ray://HOST:PORT (Ray Client, 10001)"
_HOST_PORT = re.compile(r"^(?P<scheme>ray://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})$")
#: seconds to wait for the head's port to accept a connection
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RayAddress:
    """``kind`` is ``local`` (start a cluster here), ``auto`` (the running one) or ``cluster``."""

    text: str
    kind: str
    host: str = ""
    port: int = 0


def parse_ray_address(text: str) -> RayAddress:
    """``text`` as a :class:`RayAddress`; a :class:`UsageError` listing the forms otherwise."""
    text = str(text).strip()
    if text in ("local", "auto"):
        return RayAddress(text, text)
    match = _HOST_PORT.match(text)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise UsageError(f"--ray {text!r} is not a Ray address: give {FORMS}")
    return RayAddress(text, "cluster", match["host"].strip("[]"), int(match["port"]))


def check_reachable(address: RayAddress, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A :class:`ZooError` when nothing accepts a connection at a cluster address."""
    if address.kind != "cluster":
        return
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
        raise ZooError(f"cannot connect to Ray at {address.text}: {reason} (start a head there with "
                       f"'ray start --head', or use --ray local)") from None
