"""``ssh://[user@]host[:port]``: an ARM Linux board reached with the system's OpenSSH client.

The board (a Raspberry Pi, an RK3588 board, a Jetson) needs Python 3.11 with numpy and the runtime
wheels at the versions this host runs, and nothing else::

    pip install numpy==<host's> onnxruntime==<host's> MNN==<host's> ncnn==<host's> ai-edge-litert==<host's>

(:func:`requirements` spells the line out; a runtime the board lacks only refuses the artifacts
of that runtime). Nothing of zoo is installed there: every connection sends the worker
(:mod:`compare.devices.worker`) over the SSH channel and the board's Python runs it from memory.
Artifact files go over the same channel once and are kept on the board by sha256 under
``~/.cache/zoo-device`` (``$ZOO_DEVICE_STORE`` on the board moves it).

:class:`SshTransport` runs ``ssh -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=15
[-F $ZOO_SSH_CONFIG] [-p PORT] [-l USER] -T HOST python3 -u -c <bootstrap>``: login is by key
only (an agent or ``~/.ssh`` keys; nothing ever prompts), the host key must already be in
``known_hosts``, and ``~/.ssh/config`` (or ``$ZOO_SSH_CONFIG``) may name the board by an alias:
``ssh -G`` resolves it, so a board that is this machine is known as such (:attr:`SshTransport.loopback`).
``$ZOO_SSH_PYTHON`` names the board's Python when it is not ``python3``. ssh's failures become one
line each (:meth:`SshTransport.explain`).
"""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess

from compare.devices.emulator import host_versions
from zoo.devices import Device
from zoo.errors import UsageError

#: options of every ssh run: never prompt (a password or a host key question would hang the
#: connection), give up on an unreachable board within seconds, notice a board that went away
OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15")
#: ssh's own exit status for its failures (the remote command's otherwise)
SSH_FAILED = 255
#: the remote shell's status for a command it did not find
NOT_FOUND = 127
#: ssh's messages for a board it could not talk to (the reason is the last group)
_UNREACHABLE = (re.compile(r"connect to host \S+ port \d+: (.+)$"),
                re.compile(r"(Could not resolve hostname \S+?: .+)$"),
                re.compile(r"kex_exchange_identification: (.+)$"),
                re.compile(r"(Connection (?:closed|reset|timed out) by .+)$"))


def ssh_client() -> str:
    """The ``ssh`` program, or a one-line error naming the package that has it."""
    found = shutil.which("ssh")
    if not found:
        raise UsageError("ssh is not installed: apt-get install openssh-client")
    return found


def remote_python() -> str:
    """The program the board runs the worker with (``$ZOO_SSH_PYTHON``, default ``python3``)."""
    return os.environ.get("ZOO_SSH_PYTHON") or "python3"


def requirements() -> str:
    """What a board's Python needs, at this host's versions (``numpy==1.26.4 onnxruntime==...``)."""
    return " ".join(f"{dist}=={version}" for dist, version in host_versions().items())


class SshTransport:
    """Starts the worker on ``device`` over SSH (see :mod:`compare.devices.connection`)."""

    def __init__(self, device: Device):
        self.device = device
        self._resolved: dict[str, str] | None = None

    def _ssh(self) -> list[str]:
        """``ssh`` and the options that pick the board (without the host)."""
        argv = [ssh_client(), *OPTIONS]
        config = os.environ.get("ZOO_SSH_CONFIG")
        if config:
            argv += ["-F", os.path.expanduser(config)]
        if self.device.port:
            argv += ["-p", str(self.device.port)]
        if self.device.user:
            argv += ["-l", self.device.user]
        return argv

    def command(self, bootstrap: str) -> tuple[list[str], dict[str, str]]:
        """(argv, environment) of ssh running ``bootstrap`` in the board's Python. ``-T``: no
        terminal, whatever the config says (a terminal would mangle the binary frames)."""
        remote = f"{shlex.quote(remote_python())} -u -c {shlex.quote(bootstrap)}"
        return [*self._ssh(), "-T", "--", self.device.host, remote], dict(os.environ)

    def resolved(self) -> dict[str, str]:
        """What ssh will connect to after its config (``ssh -G``: hostname, port, user, proxies);
        empty when ssh cannot tell."""
        if self._resolved is None:
            try:
                done = subprocess.run([*self._ssh(), "-G", "--", self.device.host], capture_output=True, text=True,
                                      timeout=10, stdin=subprocess.DEVNULL, check=False)
            except (OSError, subprocess.TimeoutExpired):
                done = None
            self._resolved = {}
            if done is not None and done.returncode == 0:
                for line in done.stdout.splitlines():
                    key, _, value = line.partition(" ")
                    self._resolved.setdefault(key.lower(), value.strip())
        return self._resolved

    @property
    def address(self) -> str:
        """``ssh://user@hostname:port`` of the machine ssh reaches (an alias resolved)."""
        r = self.resolved()
        host = r.get("hostname") or self.device.host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        user = r.get("user") or self.device.user
        port = r.get("port") or self.device.port or 22
        return f"ssh://{user + '@' if user else ''}{host}:{port}"

    @property
    def loopback(self) -> bool:
        """The board is this machine: its hostname after ssh's config is a loopback address and no
        proxy carries the connection elsewhere (its timings are this machine's)."""
        r = self.resolved()
        if r.get("proxyjump", "none") != "none" or r.get("proxycommand", "none") != "none":
            return False
        host = (r.get("hostname") or self.device.host or "").strip("[]")
        return dataclasses.replace(self.device, host=host).loopback

    def explain(self, stderr: str, returncode: int | None) -> str:
        """One line on why ssh or the board's Python did not start or died."""
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        text = "\n".join(lines)
        where, python = self.address, remote_python()
        if returncode == SSH_FAILED or returncode is None:
            if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
                return (f"the host key of {where} has CHANGED since it was added to known_hosts (a reinstalled "
                        f"board, or someone in between): check it, then ssh-keygen -R {self._key_host()}")
            if "Host key verification failed" in text or "host key is known" in text:
                return (f"host key of {where} is not known: add it to known_hosts "
                        f"(ssh-keyscan -p {self._port()} {self._host()} >> ~/.ssh/known_hosts)")
            denied = next((line for line in lines if "Permission denied" in line), None)
            if denied:
                return (f"{where} refused the login: {denied.split(': ', 1)[-1].rstrip('.')}: zoo logs in with a key "
                        f"only, install yours there (ssh-copy-id -p {self._port()} {self._user_at_host()})")
            for pattern in _UNREACHABLE:
                for line in lines:
                    m = pattern.search(line)
                    if m:
                        return f"cannot reach {where}: {m[1].rstrip('.')}"
        if returncode == NOT_FOUND or any(re.search(rf"{re.escape(python)}\S*: (command )?not found", x) for x in lines[-2:]):
            return f"{where} has no {python}: install Python 3.11 there (or name it with ZOO_SSH_PYTHON)"
        if lines and "No module named 'numpy'" in lines[-1]:
            return f"{where}'s {python} has no numpy: pip install {requirements()} there"
        last = lines[-1] if lines else "no message"
        return f"ssh to {where} exited {returncode}: {last}"

    def _host(self) -> str:
        return (self.resolved().get("hostname") or self.device.host).strip("[]")

    def _port(self) -> str:
        return str(self.resolved().get("port") or self.device.port or 22)

    def _user_at_host(self) -> str:
        user = self.resolved().get("user") or self.device.user
        return f"{user}@{self._host()}" if user else self._host()

    def _key_host(self) -> str:
        """How known_hosts names the board (``[host]:port`` off port 22)."""
        return self._host() if self._port() == "22" else f"'[{self._host()}]:{self._port()}'"
