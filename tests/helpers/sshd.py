"""A real OpenSSH server on 127.0.0.1 for the SSH device tests (``tests/compare/devices``).

:class:`SshServer` runs ``/usr/sbin/sshd -D -e -f CONFIG`` as the current user on a free
unprivileged port, with everything in one temporary folder: its own host key, key-only login
(no passwords, no PAM), an ``authorized_keys`` whose every key carries a ``command=`` option (the
key picks the "board" its login runs), and a client config (:meth:`SshServer.host_block`) naming
each board by a ``Host`` alias with the server's host key as the only known host. Nothing of the
machine's own ssh set-up (``/etc/ssh``, ``~/.ssh``) is read or written.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
#: sshd refuses to start as root without its privilege separation directory (Debian's service
#: creates it at boot; a container without the service has none)
PRIVSEP_DIR = Path("/run/sshd")


def missing_programs() -> list[str]:
    """What this machine lacks to run the server and reach it."""
    need = {SSHD: os.access(SSHD, os.X_OK), "ssh": bool(shutil.which("ssh")), "ssh-keygen": bool(shutil.which("ssh-keygen"))}
    return [name for name, ok in need.items() if not ok]


def free_port() -> int:
    """An unprivileged TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshServer:
    """One sshd with its keys, logins and client config under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host_key = self.key("host")
        self.known_hosts = self.root / "known_hosts"
        host_pub = " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")
        self.authorized_keys = self.root / "authorized_keys"
        self.authorized_keys.write_text("")
        self.log = self.root / "sshd.log"
        self.proc: subprocess.Popen | None = None

    def key(self, name: str) -> Path:
        """A new passphrase-less ed25519 key pair ``root/name`` (private key path)."""
        path = self.root / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
        return path

    def login(self, name: str, script: str) -> Path:
        """A key whose login runs ``script`` (a ``/bin/sh`` script; the client's command is in
        ``$SSH_ORIGINAL_COMMAND``): the key's path."""
        key = self.key(name)
        program = self.root / f"{name}-login"
        program.write_text("#!/bin/sh\n" + script)
        program.chmod(0o755)
        with self.authorized_keys.open("a") as f:
            f.write(f'command="{program}",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty '
                    f"{key.with_suffix('.pub').read_text().strip()}\n")
        return key

    def start(self, timeout: float = 10) -> None:
        """Start sshd and wait until it greets on its port."""
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}", f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}", "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
            "AllowTcpForwarding no", "X11Forwarding no", "PrintMotd no", "LogLevel VERBOSE", ""]))
        if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
            PRIVSEP_DIR.mkdir(mode=0o755)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}: {self.log.read_text().strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-2.0-"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not answer on 127.0.0.1:{self.port} within {timeout:.0f} s: {self.log.read_text().strip()}")

    def host_block(self, alias: str, key: Path, port: int | None = None, known_hosts: Path | None = None) -> str:
        """A client config ``Host`` block: ``alias`` logs in to this server as the current user with
        ``key`` (``port``, ``known_hosts``: another port or host-key list, for the failure tests)."""
        return "\n".join([
            f"Host {alias}", "  HostName 127.0.0.1", f"  Port {port or self.port}", f"  User {_user()}",
            f"  IdentityFile {key}", "  IdentitiesOnly yes", "  IdentityAgent none",
            f"  UserKnownHostsFile {known_hosts or self.known_hosts}", "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes", ""])

    def stop(self) -> None:
        """Stop the listening sshd (a session still open ends when its client leaves)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name
