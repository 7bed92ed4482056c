"""zoo.native: silencing and capturing output that is process-wide, from several threads at once
(``zoo export --jobs 2`` converts and verifies in threads)."""
from __future__ import annotations

import io
import os
import sys
import threading

from zoo.native import captured_output, native_quiet


def _target(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def test_overlapping_silences_give_the_descriptors_back() -> None:
    """A enters, B enters, A leaves, B leaves (the interleaving that, with each block saving and
    restoring on its own, left fd 1 on /dev/null for good): fd 1 and 2 are the real ones after."""
    before = (_target(1), _target(2))
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    inside = {}

    def a() -> None:
        with native_quiet():
            a_in.set()
            b_in.wait(10)
            inside["a"] = _target(1)
        a_out.set()

    def b() -> None:
        a_in.wait(10)
        with native_quiet():
            b_in.set()
            a_out.wait(10)
            inside["b"] = _target(1)  # A has left: still silenced while B is inside

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    devnull = os.stat(os.devnull)
    assert inside["a"] == inside["b"] == (devnull.st_dev, devnull.st_ino)
    assert (_target(1), _target(2)) == before


def test_captures_take_turns_and_restore_sys_stdout() -> None:
    real = sys.stdout
    first, second = io.StringIO(), io.StringIO()
    entered, release = threading.Event(), threading.Event()

    def a() -> None:
        with captured_output(first):
            entered.set()
            print("from a")
            release.wait(10)

    def b() -> None:
        entered.wait(10)
        with captured_output(second):  # waits for A: the swap is process-wide
            print("from b")

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start()
    tb.start()
    tb.join(0.3)
    assert tb.is_alive() and second.getvalue() == ""  # B waits while A captures
    release.set()
    ta.join(10)
    tb.join(10)
    assert first.getvalue() == "from a\n" and second.getvalue() == "from b\n"
    assert sys.stdout is real
