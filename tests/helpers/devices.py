"""The emulated ARM device of a test session: ``zoo device setup arm64-emu`` into the session's
isolated cache (Debian's arm64 packages and the runtimes' aarch64 wheels; about 15 s and 90 MB of
downloads on a fresh machine). Tests that need it skip, saying why, where qemu or apt is missing
(the README's test command installs ``qemu-user-static``)."""
from __future__ import annotations

import shutil

import pytest

from compare.devices import emulator


def arm64_emu_or_skip() -> dict:
    """The set-up device's record (built on first use in this session's cache)."""
    if shutil.which(emulator.QEMU) is None:
        pytest.skip(f"{emulator.QEMU} is not installed (apt-get install qemu-user-static)")
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("building the emulated device needs a Debian host (apt-get, dpkg)")
    return emulator.setup()
