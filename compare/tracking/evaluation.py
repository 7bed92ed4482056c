"""One-Pass Evaluation runs: trackers x sequences -> raw results in pytracking's layout.

Results: ``<results>/<tracker>/<dataset>/<seq>.txt`` (x, y, w, h per frame, tab separated, the
first line the initial box), ``<seq>_time.txt`` (seconds per frame, whole loop; the first line is
the initialisation) and ``<seq>_score.txt`` (the score per frame, 1 for the initial frame). Each
file is written atomically, then ``<seq>_run.json``: what made the result (artifact files, weights,
preset, frames; :mod:`compare.tracking.run_record`). An interrupted run never leaves a partial
result, and a rerun skips only sequences whose files parse and whose record is the current
tracker's; it runs the rest again.

Where the work runs:

- ``jobs=1``: in this process, one tracker loaded at a time;
- ``jobs=N``: a pool of N ``spawn`` processes; each loads a tracker (its runtime) once and keeps
  it for every sequence of that tracker it is given; 1 thread each by default;
- ``ray``: the same per-sequence tasks on Ray actors (one CPU each, a loaded tracker cached per
  actor); the frames are read by the actors, so every node must see the dataset and the artifacts at the same paths.

The driver (this process) writes every result file, whichever executor ran the sequence.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from compare.provision import ensure, runtime_keys
from compare.tracking.ray_address import check_reachable, parse_ray_address
from compare.tracking.run_record import is_finished, sequence_record, spec_record, write_record
from compare.tracking.tracker import SequenceRun, Tracker, TrackerSpec, track_sequence
from zoo.artifacts import Status
from zoo.backends import REFERENCE_RUNTIME
from zoo.catalog import Catalog
from zoo.datasets.frames import read_frame, sequence_frames
from zoo.datasets.sequence import Dataset, Sequence
from zoo.datasets.textio import RESULTS_DELIMITER, boxes_text
from zoo.errors import ExportError, UsageError, ZooError
from zoo.fileio import atomic_write_bytes, write_failure
from zoo.native import native_stderr
from zoo.procs import die_with_parent
from zoo.schema import Variant


# -- trackers -----------------------------------------------------------------------------------
def tracker_specs(catalog: Catalog, variants: list[Variant], runtimes: list[str], precisions: list[str], out: Path,
                  threads: int = 1, preset: str | None = None, on_event: Callable | None = None,
                  split: bool = False) -> tuple[list[TrackerSpec], list[str]]:
    """A :class:`TrackerSpec` per variant x runtime x precision (``pytorch`` = eager, fp32 only),
    exporting missing artifacts first. Returns the specs and notes on combinations left out (a
    precision a runtime does not offer). A failed export raises :class:`ExportError`. ``split``: the
    artifacts' split form (init graph at initialisation, track graph per frame)."""
    if REFERENCE_RUNTIME in runtimes:
        notes = [f"{v.name}: pytorch runs fp32 only (skipped {p})" for v in variants for p in precisions if p != "fp32"]
    else:
        notes = []
    provisioned = ensure(runtime_keys(variants, runtimes, precisions, split), out, catalog, on_event=on_event)
    failed = [w for w in provisioned if w.status is Status.FAILED]
    if failed:
        raise ExportError("; ".join(f"{w.key.variant} {w.key.runtime} {w.key.precision}: {w.note}" for w in failed))
    by_name = {v.name: v for v in variants}
    specs = []
    for w in provisioned:
        v = by_name[w.key.variant]
        if w.status is Status.SKIPPED:
            notes.append(f"{v.name}: {w.key.runtime} does not offer {w.key.precision} (skipped)")
            continue
        name = catalog.preset_name(v, preset)
        suffix = name if preset and name != (v.tracking or catalog.tracking.default) else None
        specs.append(TrackerSpec(w.key, v, catalog.tracking.presets[name], w.path, threads, suffix))
    return specs, notes


# -- result files -------------------------------------------------------------------------------
def result_folder(results: Path, tracker: str, dataset: str) -> Path:
    """``<results>/<tracker>/<dataset>``."""
    return Path(results) / tracker / dataset


def write_run(results: Path, dataset: str, run: SequenceRun) -> Path:
    """Write one sequence's result files atomically, ``<seq>.txt`` last; returns its path."""
    folder = result_folder(results, run.tracker, dataset)
    times = "".join(f"{t:.6f}\n" for t in run.loop_s)
    scores = "".join(f"{s:.6f}\n" for s in run.scores)
    boxes = boxes_text(run.boxes, RESULTS_DELIMITER)
    atomic_write_bytes(folder / f"{run.sequence}_time.txt", times.encode())
    atomic_write_bytes(folder / f"{run.sequence}_score.txt", scores.encode())
    atomic_write_bytes(folder / f"{run.sequence}.txt", boxes.encode())
    return folder / f"{run.sequence}.txt"


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files an interrupted run left (``.<name>.*.tmp`` of the atomic writes)."""
    removed = 0
    if folder.is_dir():
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


#: the lock a run holds on each results folder it writes (one run per folder at a time)
LOCK_NAME = ".zoo-eval.lock"


# -- one task -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SequenceTask:
    """One tracker on one sequence."""

    id: int  # position in the run's task list
    spec: TrackerSpec
    sequence: Sequence


@dataclass
class SequenceResult:
    task_id: int
    run: SequenceRun | None
    error: str | None = None
    usage_error: bool = False
    pid: int = 0


class TrackerCache:
    """Loaded trackers of one worker, by spec: each runtime is loaded once per process."""

    def __init__(self):
        self._trackers: dict[tuple, Tracker] = {}

    def get(self, spec: TrackerSpec) -> Tracker:
        key = (spec.name, str(spec.artifact), spec.threads)
        if key not in self._trackers:
            self._trackers[key] = spec.build()
        return self._trackers[key]

    def close(self) -> None:
        for tracker in self._trackers.values():
            tracker.close()
        self._trackers.clear()


def frames_of(seq: Sequence):
    """The RGB frames of ``seq``, read one at a time (an unreadable frame is a UsageError naming it)."""
    for path in sequence_frames(seq):
        yield read_frame(path)


def run_sequence_task(task: SequenceTask, cache: TrackerCache) -> SequenceResult:
    """Run one task with a tracker from ``cache``; errors come back as text (they cross processes)."""
    try:
        tracker = cache.get(task.spec)
        run = track_sequence(tracker, frames_of(task.sequence), task.sequence.initial_box(), task.sequence.name)
        return SequenceResult(task.id, run, pid=os.getpid())
    except UsageError as exc:
        return SequenceResult(task.id, None, str(exc), usage_error=True, pid=os.getpid())
    except Exception as exc:  # a runtime failure on one sequence is reported, the others still run
        return SequenceResult(task.id, None, f"{task.spec.name} {task.sequence.name}: {type(exc).__name__}: {exc}", pid=os.getpid())


# -- executors --------------------------------------------------------------------------------------
_WORKER_CACHE: TrackerCache | None = None


def _pool_init(threads: int, with_parent: bool = False) -> None:
    """A worker's set-up: its thread budget, its tracker cache; ``with_parent``: it dies with the
    run that started it (a SIGKILLed ``zoo eval run`` leaves no worker behind)."""
    global _WORKER_CACHE
    if with_parent:
        die_with_parent()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    cv2.setNumThreads(threads)  # OpenCV's own pool (JPEG decoding, resize) also stays within the job's threads
    _WORKER_CACHE = TrackerCache()


def _pool_run(task: SequenceTask) -> SequenceResult:
    assert _WORKER_CACHE is not None
    return run_sequence_task(task, _WORKER_CACHE)


def _run_local(tasks: list[SequenceTask], threads: int, on_result: Callable[[SequenceTask, SequenceResult], None]) -> None:
    cache = TrackerCache()
    previous = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        current = None
        for task in tasks:
            if current is not None and task.spec.name != current:  # one loaded runtime at a time
                cache.close()
            current = task.spec.name
            on_result(task, run_sequence_task(task, cache))
    finally:
        cache.close()
        cv2.setNumThreads(previous)


def _run_pool(tasks: list[SequenceTask], jobs: int, threads: int, on_result: Callable[[SequenceTask, SequenceResult], None]) -> None:
    ctx = mp.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_pool_init, initargs=(threads, True))
    finished = False
    try:
        futures = {pool.submit(_pool_run, task): task for task in tasks}
        for future in cf.as_completed(futures):
            on_result(futures[future], future.result())
        finished = True
    finally:  # interrupted: drop queued tasks and do not wait for the running ones (nothing is half-written)
        pool.shutdown(wait=finished, cancel_futures=True)


def _ray_actor_class(ray):
    @ray.remote(num_cpus=1)
    class TrackActor:
        """A Ray actor holding loaded trackers (one runtime instance per spec) for its tasks."""

        def __init__(self, threads: int):
            _pool_init(threads)

        def run(self, task: SequenceTask) -> SequenceResult:
            return _pool_run(task)

    return TrackActor


def ray_module():
    """The ``ray`` package, or a UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'zoo[ray]' (ray==2.60.0)") from None
    return ray


def connect_ray(address: str, cpus: int | None = None):
    """Connect to a Ray cluster (``auto``, ``ray://host:port``, ``host:port``) or start a local one
    (``local``, with ``cpus`` CPUs); an already initialised Ray in this process is used as is."""
    parsed = parse_ray_address(address)
    ray = ray_module()
    if ray.is_initialized():
        return ray
    check_reachable(parsed)
    try:
        with native_stderr() as said:  # Ray's C++ client logs gcs_client retries on fd 2
            if parsed.kind == "local":
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=parsed.text, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else (said.first or type(exc).__name__)
        raise ZooError(f"cannot connect to Ray at {address!r}: {detail}") from None
    return ray


def _run_ray(tasks: list[SequenceTask], actors: int, threads: int, on_result: Callable[[SequenceTask, SequenceResult], None]) -> None:
    ray = ray_module()
    from ray.util import ActorPool

    cls = _ray_actor_class(ray)
    pool_actors = [cls.options(num_cpus=threads).remote(threads) for _ in range(actors)]  # a CPU per thread
    try:
        pool = ActorPool(pool_actors)
        for task in tasks:
            pool.submit(lambda actor, t: actor.run.remote(t), task)
        while pool.has_next():
            result: SequenceResult = pool.get_next_unordered()
            on_result(tasks[result.task_id], result)
    finally:
        for actor in pool_actors:
            ray.kill(actor)



# -- the run ----------------------------------------------------------------------------------------
@dataclass
class TrackerSummary:
    """Per tracker: sequences run now / already done, frames, network and whole-loop fps."""

    tracker: str
    sequences: int = 0
    skipped: int = 0
    failed: int = 0
    frames: int = 0
    network_s: float = 0.0
    loop_s: float = 0.0

    def row(self) -> dict:
        tracked = max(0, self.frames - self.sequences)  # the first frame of each sequence is not tracked
        return {"tracker": self.tracker, "sequences": self.sequences, "skipped": self.skipped, "failed": self.failed,
                "frames": self.frames,
                "network_fps": tracked / self.network_s if self.network_s > 0 else None,
                "loop_fps": tracked / self.loop_s if self.loop_s > 0 else None,
                "network_ms": 1000 * self.network_s / tracked if tracked else None,
                "loop_ms": 1000 * self.loop_s / tracked if tracked else None}


@dataclass
class EvalRun:
    """What a run did: per tracker summaries, errors, wall time."""

    summaries: dict[str, TrackerSummary]
    errors: list[str] = field(default_factory=list)
    #: some failure was bad input (an unreadable frame, ...), not the runtime
    usage_error: bool = False
    wall_s: float = 0.0
    tasks: int = 0
    pids: set[int] = field(default_factory=set)


def check_frames(dataset: Dataset) -> None:
    """Every sequence has its frames (at least one per ground-truth line) and a box to start from:
    checked before any run."""
    for seq in dataset.sequences:
        sequence_frames(seq)
        seq.initial_box()


def run_evaluation(specs: list[TrackerSpec], dataset: Dataset, results: Path, jobs: int = 1, ray_address: str | None = None,
                   threads: int = 1, on_start: Callable[[int, int], None] | None = None,
                   on_result: Callable[[SequenceTask, SequenceResult], None] | None = None,
                   summaries: dict[str, TrackerSummary] | None = None) -> EvalRun:
    """Run every tracker on every sequence not finished yet and write the results.

    ``on_start(tasks, frames)`` is called once with the work to do; ``on_result(task, result)``
    after each sequence's files are written (or it failed). ``summaries``, when given, is filled
    with the per-tracker :class:`TrackerSummary` as the run goes (the same objects the result holds).
    """
    check_frames(dataset)
    results = Path(results)
    summaries = {} if summaries is None else summaries
    summaries.update({spec.name: TrackerSummary(spec.name) for spec in specs})
    tasks: list[SequenceTask] = []
    records = {spec.name: spec_record(spec) for spec in specs}
    with contextlib.ExitStack() as held:
        for spec in specs:  # one run per results folder: the leftovers we clean are then nobody else's
            held.enter_context(folder_lock(result_folder(results, spec.name, dataset.name)))
        return _run_locked(specs, dataset, results, jobs, ray_address, threads, on_start, on_result, summaries, records, tasks)


def folder_lock(folder: Path) -> contextlib.AbstractContextManager:
    """Hold ``folder``'s run lock (``.zoo-eval.lock``) for a ``with`` block; a :class:`ZooError`
    naming the other run when it is held."""
    @contextlib.contextmanager
    def held():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fh = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise write_failure("results", folder, exc) from None
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                other = fh.read().strip() or "?"
                raise ZooError(f"another zoo eval run (pid {other}) is writing {folder}: wait for it to end") from None
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            yield
    return held()


def _run_locked(specs, dataset, results, jobs, ray_address, threads, on_start, on_result, summaries, records, tasks) -> EvalRun:
    for spec in specs:
        folder = result_folder(results, spec.name, dataset.name)
        remove_stale_temporaries(folder)
        for seq in dataset.sequences:
            if is_finished(folder, seq, sequence_record(records[spec.name], seq)):
                summaries[spec.name].skipped += 1
            else:
                tasks.append(SequenceTask(len(tasks), spec, seq))
    outcome = EvalRun(summaries, tasks=len(tasks))
    if on_start is not None:
        on_start(len(tasks), sum(len(t.sequence) for t in tasks))

    def done(task: SequenceTask, result: SequenceResult) -> None:
        summary = summaries[task.spec.name]
        outcome.pids.add(result.pid)
        if result.run is None:
            summary.failed += 1
            outcome.errors.append(result.error or "unknown error")
            outcome.usage_error = outcome.usage_error or result.usage_error
        else:
            try:
                written = write_run(results, dataset.name, result.run)
                write_record(written.parent, task.sequence.name, sequence_record(records[task.spec.name], task.sequence))
            except OSError as exc:  # a full disk, a folder made read-only meanwhile: the run stops here
                raise write_failure(f"{task.sequence.name}'s results", result_folder(results, task.spec.name, dataset.name),
                                    exc) from None
            summary.sequences += 1
            summary.frames += result.run.frames
            summary.network_s += float(result.run.network_s[1:].sum())
            summary.loop_s += float(result.run.loop_s[1:].sum())
        if on_result is not None:
            on_result(task, result)

    start = time.perf_counter()
    if tasks:
        if ray_address is not None:
            ray = connect_ray(ray_address, cpus=jobs)
            actors = jobs if jobs > 1 else max(1, int(ray.cluster_resources().get("CPU", 1)) // max(1, threads))
            _run_ray(tasks, min(actors, len(tasks)), threads, done)
        elif jobs > 1 and len(tasks) > 1:
            _run_pool(tasks, min(jobs, len(tasks)), threads, done)
        else:
            _run_local(tasks, threads, done)
    outcome.wall_s = time.perf_counter() - start
    return outcome
