"""SSH boards for the device tests: one real sshd on 127.0.0.1 (:mod:`tests.helpers.sshd`) whose
keys pick what a login runs, named by ``Host`` aliases in a client config set as
``$ZOO_SSH_CONFIG`` (fixture ``boards``):

- ``arm-board``: the emulated aarch64 board, arm64-emu's Python 3.11 and wheels under
  ``qemu-aarch64-static -cpu cortex-a76`` (ARM kernels, ARMv8.2 fp16 arithmetic);
- ``native-board``: this machine's own Python (``sys.executable``), for real timings of a
  loopback board;
- ``bare-board``: this machine's Python with numpy and no runtime (``-S``: no site-packages);
  ``empty-board``: the same without numpy;
- ``stranger-board``: a key the server does not know; ``unknown-board``: a server whose host key
  is not in the client's known hosts; ``closed-board``: a port nothing listens on.

Each board's home is its own temporary folder (the worker keeps artifacts in ``~/.cache/zoo-device``).
"""
from __future__ import annotations

import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from compare.devices import emulator
from tests.helpers.sshd import SshServer, free_port, missing_programs

@dataclass
class Boards:
    server: SshServer
    config: Path
    #: each login's home (its worker's store is ``home/.cache/zoo-device``)
    homes: dict[str, Path]


def _bare_site(folder: Path) -> Path:
    """A site folder holding only this host's numpy (its package, libraries and metadata)."""
    folder.mkdir()
    numpy_dir = Path(np.__file__).resolve().parent
    for item in numpy_dir.parent.iterdir():
        if item.name == "numpy" or item.name.startswith(("numpy.libs", "numpy-")):
            (folder / item.name).symlink_to(item)
    return folder


@pytest.fixture(scope="session")
def boards(tmp_path_factory: pytest.TempPathFactory, arm64_emu: dict) -> Boards:
    """The sshd and its boards; ``$ZOO_SSH_CONFIG`` names them for the whole session."""
    missing = missing_programs() + ([emulator.QEMU] if not shutil.which(emulator.QEMU) else [])
    if missing:
        pytest.skip(f"SSH device tests need {', '.join(missing)} (apt-get install openssh-server openssh-client "
                    "qemu-user-static)")
    device = emulator.device_dir()  # the session's emulated device (fixture arm64_emu, isolated cache)
    root = tmp_path_factory.mktemp("sshd")
    server = SshServer(root)
    homes = {name: root / f"{name}-home" for name in ("arm", "native", "bare", "empty")}
    for home in homes.values():
        home.mkdir()
    q = shlex.quote
    sysroot = device / "sysroot"
    keys = {
        "arm": server.login("arm", (
            f"export HOME={q(str(homes['arm']))} PATH=/usr/bin:/bin PYTHONPATH={q(str(device / 'site'))} "
            "PYTHONDONTWRITEBYTECODE=1\n"
            'eval "set -- $SSH_ORIGINAL_COMMAND"\nshift\n'
            f'exec {q(emulator.qemu_path())} -cpu cortex-a76 -L {q(str(sysroot))} {q(str(sysroot / emulator.PYTHON))} "$@"\n')),
        "native": server.login("native", (
            f"export HOME={q(str(homes['native']))} PATH={q(str(_python_bin(root / 'native-bin')))}:/usr/bin:/bin\n"
            'eval "exec $SSH_ORIGINAL_COMMAND"\n')),
        "bare": server.login("bare", (
            f"export HOME={q(str(homes['bare']))} PATH=/usr/bin:/bin PYTHONPATH={q(str(_bare_site(root / 'bare-site')))}\n"
            'eval "set -- $SSH_ORIGINAL_COMMAND"\nshift\n'
            f'exec {q(sys.executable)} -S "$@"\n')),
        "empty": server.login("empty", (
            f"export HOME={q(str(homes['empty']))} PATH=/usr/bin:/bin\n"
            'eval "set -- $SSH_ORIGINAL_COMMAND"\nshift\n'
            f'exec {q(sys.executable)} -S "$@"\n')),
    }
    stranger = server.key("stranger")
    nobody_known = root / "known_hosts.empty"
    nobody_known.write_text("")
    config = root / "ssh_config"
    config.write_text("\n".join([
        *(server.host_block(f"{name}-board", key) for name, key in keys.items()),
        server.host_block("stranger-board", stranger),
        server.host_block("unknown-board", keys["native"], known_hosts=nobody_known),
        server.host_block("closed-board", keys["native"], port=free_port()),
    ]))
    server.start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_SSH_CONFIG", str(config))
        mp.delenv("ZOO_SSH_PYTHON", raising=False)
        yield Boards(server, config, homes)
    server.stop()


def _python_bin(folder: Path) -> Path:
    """A folder whose ``python3`` is this machine's Python (the board's PATH)."""
    folder.mkdir()
    program = folder / "python3"
    program.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    program.chmod(0o755)
    return folder
