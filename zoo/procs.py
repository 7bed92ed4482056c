"""Child processes that die with their parent, and signals that end a command cleanly.

- :class:`Interrupted` is what the CLI's SIGINT/SIGTERM handlers raise (:func:`interrupt_handlers`).
  It derives from ``BaseException`` (not ``KeyboardInterrupt``) so no ``except Exception`` swallows
  it and click does not turn it into its own two-line "Aborted!"; ``finally`` blocks and context
  managers still run, which is where children are stopped.
- :func:`die_with_parent` asks Linux to SIGKILL the calling process when its parent dies
  (``PR_SET_PDEATHSIG``), so even a SIGKILLed ``zoo`` leaves no worker spinning;
  :func:`exit_with_parent_process` does the same for a child a short-lived thread started.
- :func:`run_group` runs a command in a session (process group) of its own and kills the whole
  group when the caller is interrupted, times out, or the caller dies (parent-death signal).
- :func:`sigint_blocked` keeps SIGINT blocked while children are started: they inherit the mask,
  so a Ctrl-C (sent by the terminal to the whole foreground group) never reaches them half-way
  through their start-up; the parent receives it as soon as it unblocks.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator

_PR_SET_PDEATHSIG = 1
try:  # resolved once here: a preexec_fn must not load libraries after fork
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _PRCTL = None

# JAX (imported by litert-torch) warns on every fork. run_group's preexec_fn (the parent-death signal)
# makes subprocess fork: the child only calls prctl and execs, so the deadlock it warns of cannot happen.
warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)

#: exit codes and the line printed for each signal the CLI handles
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
MESSAGES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 128 + int(self.signum))

    @property
    def message(self) -> str:
        return MESSAGES.get(self.signum, f"killed by signal {int(self.signum)}")


#: process groups started by :func:`run_group` and still running (killed by the signal handler:
#: a converter running in a worker thread is not reached by an exception in the main thread)
_LIVE_GROUPS: set[int] = set()


def kill_live_groups() -> None:
    """SIGKILL every process group :func:`run_group` started that is still running."""
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _raise_interrupted(signum, _frame) -> None:
    # Further SIGINT/SIGTERM must not raise again in the middle of the cleanup.
    for s in EXIT_CODES:
        signal.signal(s, signal.SIG_IGN)
    kill_live_groups()
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupt_handlers() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread for the block (restored
    after); outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, _raise_interrupted) for s in EXIT_CODES}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux; a no-op
    elsewhere). If the parent is already gone (it died before this call) exit at once."""
    if _PRCTL is None:
        return
    parent = os.getppid()
    _PRCTL(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent == 1 or os.getppid() != parent:
        os._exit(1)


def exit_with_parent_process() -> None:
    """In a multiprocessing child: leave at once when the parent *process* dies. Unlike
    :func:`die_with_parent` (the kernel's parent-death signal follows the parent *thread* that started
    the child), this holds for a child started from a short-lived thread of its parent: a thread
    here waits on the parent's sentinel, which becomes ready when the parent process is gone."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="zoo-parent-watch", daemon=True).start()


def _preexec() -> None:  # runs in the child between fork and exec: no imports, no locks
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread for the block (children started inside inherit the
    block). A signal that arrived while a spawned child was being started would otherwise cut the
    child's pickled arguments short, and the child would print a traceback of its own."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def ignore_sigint() -> None:
    """In a worker child: Ctrl-C is the parent's business (it stops the children), and unblock
    the mask :func:`sigint_blocked` left so grandchildren start with a normal one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s process group (it leads its own session) and reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    proc.wait()


def run_group(argv: list[str], *, timeout: float | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, **kwargs)`` in a new session whose whole process group is killed
    when this call does not return normally (an exception, :class:`Interrupted`, a timeout:
    ``subprocess.TimeoutExpired`` is raised after the kill). The child also gets a parent-death
    signal, so it does not outlive a parent that was SIGKILLed."""
    proc = subprocess.Popen(argv, start_new_session=True, preexec_fn=_preexec if _PRCTL else None, **kwargs)
    _LIVE_GROUPS.add(proc.pid)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        kill_group(proc)
        raise
    finally:
        # A converter that exited may leave helpers of its own behind: they go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        _LIVE_GROUPS.discard(proc.pid)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
