"""zoo.fileio's one output rule: regular files are replaced by a rename (never half-written),
symlinks are followed, character devices, FIFOs and ``-`` are written through, nothing else is
replaced. Devices used: /dev/null and /dev/full (there for every user), a FIFO and a socket made
here; nothing needs root."""
from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

import pytest

from zoo import fileio
from zoo.errors import UsageError
from zoo.fileio import atomic_path, atomic_write_bytes, plot_format


def _is_char_device(path: str) -> bool:
    return stat.S_ISCHR(os.stat(path).st_mode)


def test_a_regular_file_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old"
    atomic_write_bytes(target, b"new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temporary left


def test_character_devices_are_written_through() -> None:
    atomic_write_bytes(Path("/dev/null"), b"discarded")
    assert _is_char_device("/dev/null")
    with atomic_path(Path("/dev/null"), suffix=".png") as tmp:  # a file-name writer (savefig, cv2)
        tmp.write_bytes(b"also discarded")
    assert _is_char_device("/dev/null") and fileio.output_target("/dev/null").kind == "through"
    with pytest.raises(OSError) as info:  # a real full device: ENOSPC, named
        atomic_write_bytes(Path("/dev/full"), b"x" * 10000)
    assert info.value.errno == errno.ENOSPC and info.value.filename == "/dev/full"
    with pytest.raises(OSError) as info, atomic_path(Path("/dev/full")) as tmp:
        tmp.write_bytes(b"x" * 10000)
    assert info.value.errno == errno.ENOSPC
    assert _is_char_device("/dev/full")


def test_a_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader already there: the writer's open does not block
    try:
        atomic_write_bytes(fifo, b"first\n")
        with atomic_path(fifo) as tmp:
            tmp.write_bytes(b"second\n")
        assert os.read(reader, 1 << 16) == b"first\nsecond\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_an_open_descriptor_is_written_through() -> None:
    """``/dev/stdout`` or ``/dev/fd/N`` names a descriptor (here a pipe's): written in place, not
    resolved to the ``pipe:[...]`` its link names."""
    read_end, write_end = os.pipe()
    try:
        atomic_write_bytes(Path(f"/dev/fd/{write_end}"), b"one ")
        with atomic_path(Path(f"/proc/self/fd/{write_end}")) as tmp:
            tmp.write_bytes(b"two")
        os.close(write_end)
        assert os.read(read_end, 100) == b"one two"
    finally:
        os.close(read_end)
        try:
            os.close(write_end)
        except OSError:
            pass


def test_a_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "data" / "boxes.txt"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "boxes.txt"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    dangling = tmp_path / "later.txt"
    dangling.symlink_to(tmp_path / "data" / "later-target.txt")
    atomic_write_bytes(dangling, b"made\n")
    assert dangling.is_symlink() and (tmp_path / "data" / "later-target.txt").read_text() == "made\n"
    assert sorted(p.name for p in real.parent.iterdir()) == ["boxes.txt", "later-target.txt"]


def test_dash_is_stdout(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    atomic_write_bytes(Path("-"), b"to stdout\n")
    with atomic_path(Path("-")) as tmp:
        tmp.write_bytes(b"and this\n")
    assert capsys.readouterr().out == "to stdout\nand this\n"
    assert list(tmp_path.iterdir()) == []  # no file named '-'


def test_other_special_files_and_directories_are_never_replaced(tmp_path: Path) -> None:
    sock_path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(sock_path))
        with pytest.raises(OSError, match="socket"):
            atomic_write_bytes(sock_path, b"x")
        with pytest.raises(OSError, match="socket"), atomic_path(sock_path) as tmp:
            tmp.write_bytes(b"x")
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    finally:
        server.close()
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write_bytes(folder, b"x")
    assert folder.is_dir()


@pytest.mark.parametrize("name, fmt", [("a.png", "png"), ("b.PDF", "pdf"), ("c.svg", "svg"), ("-", "png")])
def test_a_plot_is_written_in_the_format_its_suffix_names(name, fmt) -> None:
    assert plot_format(name) == fmt


@pytest.mark.parametrize("name", ["a.jpg", "plot", "a.png.txt"])
def test_a_plot_suffix_matplotlib_does_not_write_is_refused(name) -> None:
    with pytest.raises(UsageError, match="a plot is written as .png, .pdf, .svg"):
        plot_format(name)
