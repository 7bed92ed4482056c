"""Where the commands' outputs go: through character devices and FIFOs, along symlinks, never
over a special file. The runs use ``eval analyze`` on the bundled OTB results (no model); nothing
needs root."""
from __future__ import annotations

import os
import socket
import stat

from tests.helpers.catalog import REPO
from tests.helpers.cli import error_line, run, usage_line  # noqa: F401 (fixture)

OTB = REPO / "tests" / "data" / "otb"
ANALYZE = ("eval", "analyze", str(OTB / "results" / "ATOM"), "--dataset", "otb", "--root", str(OTB))


def _is_char_device(path: str) -> bool:
    return stat.S_ISCHR(os.stat(path).st_mode)


# -- special files ---------------------------------------------------------------------------------

def test_reports_go_through_devices_and_fifos_and_along_symlinks(run, tmp_path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    real = tmp_path / "kept" / "report.md"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "report.md"
    link.symlink_to(real)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # reading before the command writes: its open does not block
    try:
        code, _, err = run(*ANALYZE, "--json", "/dev/null", "--csv", str(fifo), "--markdown", str(link))
        assert code == 0, err
        csv_text = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert csv_text.startswith("tracker,sequence,") and "ATOM,ALL," in csv_text
    assert _is_char_device("/dev/null") and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert link.is_symlink() and real.read_text().startswith("## zoo eval analyze")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "pipe", "report.md"]


def test_a_report_onto_a_full_device_fails_in_one_line(run) -> None:
    code, _, err = run(*ANALYZE, "--json", "/dev/full")
    assert code == 1 and "cannot write /dev/full: No space left on device" in error_line(err)
    assert _is_char_device("/dev/full")


def test_a_socket_is_refused_before_the_run(run, tmp_path) -> None:
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        code, _, err = run(*ANALYZE, "--json", str(path))
        assert code == 2 and "a socket, not replaced" in usage_line(err)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        server.close()
