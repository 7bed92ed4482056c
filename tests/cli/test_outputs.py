"""Where the commands' outputs go: through character devices and FIFOs, along symlinks, never
over a special file; a video that does not read back never replaces the old one; no output is
an input or another output, and at most one goes to stdout. The refusals come before any model
work; the runs use ``eval analyze`` on the bundled OTB results or ``track --runtime pytorch``
(no export). Nothing needs root except the small-file-system case, skipped without it."""
from __future__ import annotations

import os
import resource
import signal
import socket
import stat
from pathlib import Path

import cv2
import pytest

from tests.helpers.catalog import REPO
from tests.helpers.cli import error_line, run, usage_line  # noqa: F401 (fixture)
from tests.helpers.mounts import tmpfs  # noqa: F401 (fixture)
from zoo.datasets.synthetic import make_sequence, write_sequence
from zoo.errors import UsageError

OTB = REPO / "tests" / "data" / "otb"
ANALYZE = ("eval", "analyze", str(OTB / "results" / "ATOM"), "--dataset", "otb", "--root", str(OTB))
FRAMES = 4


@pytest.fixture(scope="module")
def clip():
    return make_sequence("Clip", frames=FRAMES)


@pytest.fixture(scope="module")
def sequence(clip, tmp_path_factory) -> Path:
    """An OTB-layout sequence folder (frames and ground truth): ``zoo track`` initialises itself."""
    return write_sequence(clip, tmp_path_factory.mktemp("outputs"), "otb")


@pytest.fixture(scope="module")
def movie(clip, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("movie") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for frame in clip.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _track(sequence: Path, *args: str) -> tuple[str, ...]:
    return ("track", "base-c128", str(sequence), "--runtime", "pytorch", *args)


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


def test_track_writes_through_devices_and_a_full_one_fails_in_one_line(run, sequence, tmp_path) -> None:
    real = tmp_path / "boxes-real.txt"
    link = tmp_path / "boxes.txt"
    link.symlink_to(real)
    code, _, err = run(*_track(sequence, "--boxes", str(link), "--json", "/dev/null", "--video", "/dev/full"))
    assert code == 1 and "cannot write video /dev/full: No space left on device" in error_line(err)
    assert _is_char_device("/dev/null") and _is_char_device("/dev/full")
    assert link.is_symlink() and len(real.read_text().splitlines()) == FRAMES  # the boxes were kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boxes-real.txt", "boxes.txt"]


def test_a_video_on_a_full_file_system_keeps_the_old_one(run, sequence, tmpfs) -> None:  # noqa: F811 (fixture)
    """A real full disk (a 32 KiB tmpfs: mounting needs root, skipped otherwise): the mp4 writer
    fails without a word; the command says so in one line, exits 1 and leaves the old file."""
    small = tmpfs("small", size="32k")
    old = small / "tracked.mp4"
    old.write_bytes(b"the old video" * 200)
    code, out, err = run(*_track(sequence, "--video", str(old)))
    assert code == 1, err
    line = error_line(err)
    assert f"cannot write video {old}" in line and "file system is full" in line and "unchanged" in line
    assert old.read_bytes() == b"the old video" * 200
    assert sorted(p.name for p in small.iterdir()) == ["tracked.mp4"]
    assert "video:" not in out


def test_a_video_the_writer_could_not_finish_keeps_the_old_one(run, sequence, tmp_path, monkeypatch) -> None:
    """No root needed: from the moment the mp4 writer opens, this process may not grow a file past
    16 KiB (RLIMIT_FSIZE; SIGXFSZ ignored, so writes fail with EFBIG as on a full disk with
    ENOSPC). OpenCV says nothing and leaves a cut mp4; the command must catch it."""
    old = tmp_path / "tracked.mp4"
    old.write_bytes(b"the old video" * 4000)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    real_writer = cv2.VideoWriter

    def writer_on_a_small_budget(*args):
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, limit[1]))
        return real_writer(*args)

    monkeypatch.setattr(cv2, "VideoWriter", writer_on_a_small_budget)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        code, out, err = run(*_track(sequence, "--video", str(old)))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert code == 1, err
    line = error_line(err)
    assert f"cannot write video {old}" in line and "not a readable video" in line and "unchanged" in line
    assert old.read_bytes() == b"the old video" * 4000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tracked.mp4"] and "video:" not in out


# -- outputs that are inputs or each other ---------------------------------------------------------

@pytest.mark.parametrize("case", ["video over source", "boxes over ground truth", "boxes and video", "json through a symlink",
                                  "hard link", "two on stdout"])
def test_track_refuses_an_output_that_is_an_input_or_another_output(run, sequence, movie, tmp_path, case) -> None:
    before = movie.read_bytes()
    out = tmp_path / "out.mp4"
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "boxes.txt")
    (tmp_path / "report.json").write_text("{}")
    os.link(tmp_path / "report.json", tmp_path / "hard.json")
    args, needle = {
        "video over source": (("track", "base-c128", str(movie), "--runtime", "pytorch", "--init", "100,80,40,40",
                               "--video", str(movie)), f"--video {movie} is SOURCE"),
        "boxes over ground truth": (_track(sequence, "--out", str(sequence / "groundtruth_rect.txt")), "is SOURCE's ground truth"),
        "boxes and video": (_track(sequence, "--out", str(out), "--video", str(out)), "are the same file"),
        "json through a symlink": (_track(sequence, "--boxes", str(tmp_path / "boxes.txt"), "--json", str(link)), "are the same file"),
        "hard link": (_track(sequence, "--boxes", str(tmp_path / "hard.json"), "--json", str(tmp_path / "report.json")),
                      "are the same file"),
        "two on stdout": (_track(sequence, "--out", "-", "--json", "-"), "--boxes - and --json - both write to stdout"),
    }[case]
    code, stdout, err = run(*args)
    assert code == 2 and needle in usage_line(err), err
    assert stdout == "" and movie.read_bytes() == before
    assert not out.exists() and not (tmp_path / "boxes.txt").exists() and (tmp_path / "report.json").read_text() == "{}"


@pytest.mark.parametrize("args, needle", [
    (ANALYZE + ("--json", "-", "--csv", "-"), "--json - and --csv - both write to stdout"),
    (ANALYZE + ("--json", "{tmp}/r", "--markdown", "{tmp}/r"), "are the same file"),
    (("eval", "drift", str(OTB / "results" / "ATOM"), str(OTB / "results" / "CFNet"), "--dataset", "otb", "--root", str(OTB),
      "--csv", "{tmp}/d", "--json", "{tmp}/d"), "are the same file"),
    (("list", "--json", "-", "--markdown", "-"), "both write to stdout"),
    (("compare", "base-c128", "--inputs", "{tmp}/in.npz", "--save-inputs", "{tmp}/in.npz"), "is --inputs"),
    (("compare", "base-c128", "--save-outputs", "{tmp}/o.npz", "--json", "{tmp}/o.npz"), "are the same file"),
    (("compare", "base-c128", "--json", "-", "--csv", "-"), "both write to stdout"),
], ids=["analyze two on stdout", "analyze json and markdown", "drift csv and json", "list two on stdout",
        "compare saves over its inputs", "compare outputs and json", "compare two on stdout"])
def test_reports_refuse_the_same_file_twice_and_two_on_stdout(run, tmp_path, args, needle) -> None:
    """Refused before any work (compare would export first)."""
    (tmp_path / "in.npz").write_bytes(b"inputs")
    code, stdout, err = run(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert code == 2 and needle in usage_line(err), err
    assert stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]
    assert (tmp_path / "in.npz").read_bytes() == b"inputs"


def test_devices_take_any_number_of_outputs(tmp_path) -> None:
    """``/dev/null`` twice is fine (nothing is overwritten); a FIFO or a pipe is one output's."""
    from zoo.cli.options import distinct_outputs

    distinct_outputs({"--json": Path("/dev/null"), "--csv": Path("/dev/null"), "--markdown": Path("-")})
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="are the same file"):
        distinct_outputs({"--json": fifo, "--csv": fifo})
    read_end, write_end = os.pipe()  # two names of one descriptor (as /dev/stdout and -)
    try:
        with pytest.raises(UsageError, match="are the same file"):
            distinct_outputs({"--json": Path(f"/dev/fd/{write_end}"), "--csv": Path(f"/proc/self/fd/{write_end}")})
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("ro", [True, False], ids=["read-only", "full"])
def test_plots_that_cannot_be_written_are_one_line(run, tmpfs, ro) -> None:  # noqa: F811 (fixture)
    """``eval analyze --plot DIR`` on a read-only or a full file system (before: "internal error:
    OSError"): one line naming the folder and the reason, exit 1, the tables still printed."""
    where = tmpfs("plots", size="16k", ro=ro) / "plots"
    code, _, err = run(*ANALYZE, "--plot", str(where))
    line = error_line(err)
    assert code == 1 and f"cannot write plots in {where}" in line, err
    assert ("Read-only file system" if ro else "No space left on device") in line and "internal error" not in err
