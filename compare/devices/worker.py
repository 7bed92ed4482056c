"""The device worker: the one module that runs on a device's own Python (an ARM board over SSH, or
the emulated aarch64 Python under qemu), with only the standard library, numpy and the runtime
wheels. It is sent as source over the connection and started in a single process (an emulated
process cannot start another aarch64 binary); nothing of zoo is installed on the device.

Protocol (both ends use :func:`send` / :func:`receive` of this module): a frame is a 4-byte
big-endian length, a JSON header of that length, then the header's ``blobs`` (``[[name, size],
...]``) as raw bytes. Arrays travel as ``.npy`` bytes read with ``allow_pickle=False``; files as
their bytes, stored under their sha256 and checked against it. Requests carry ``op``; replies
``ok`` and either results or ``error`` (one line). Nothing is ever unpickled.

The host computes every runtime setting (threads, MNN's precision mode, ncnn's fp16 switches)
with the local runner's own methods and sends them as data; this module only applies them, so
a device runs an artifact exactly as zoo's process would. Tensor names and layouts are the
runtime's own (the host maps them through the manifest).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import struct
import sys
import tempfile
import time

import numpy as np

#: bumped when a message changes; the host refuses a worker of another version
PROTOCOL = 1
#: a frame's header is JSON and small; anything larger is a broken stream, not a request
MAX_HEADER = 1 << 20
#: the largest blob either end accepts (an artifact file or an array): a bound, not a trust
MAX_BLOB = 1 << 30
#: distributions whose versions a device reports (import name, distribution name)
RUNTIMES = (("onnxruntime", "onnxruntime"), ("MNN", "MNN"), ("ncnn", "ncnn"),
            ("ai_edge_litert.interpreter", "ai-edge-litert"))


# -- framing (shared with the host) ------------------------------------------------------------
class ProtocolError(Exception):
    """The stream does not hold a frame (closed, cut off or not this protocol)."""


def _read_exact(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise ProtocolError(f"stream closed after {n - left} of {n} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def send(stream, header: dict, blobs: dict[str, bytes] | None = None) -> None:
    """Write one frame: ``header`` (JSON-able) and named byte blobs."""
    blobs = blobs or {}
    header = dict(header, blobs=[[k, len(v)] for k, v in blobs.items()])
    data = json.dumps(header).encode()
    stream.write(struct.pack(">I", len(data)) + data)
    for value in blobs.values():
        stream.write(value)
    stream.flush()


def receive(stream) -> tuple[dict, dict[str, bytes]]:
    """Read one frame: (header, blobs)."""
    (n,) = struct.unpack(">I", _read_exact(stream, 4))
    if n > MAX_HEADER:
        raise ProtocolError(f"frame header of {n} bytes: not a zoo device stream")
    try:
        header = json.loads(_read_exact(stream, n))
    except ValueError as exc:
        raise ProtocolError(f"unreadable frame header: {exc}") from None
    sizes = header.pop("blobs", [])
    if not isinstance(sizes, list) or any(not isinstance(s, list) or len(s) != 2 or not 0 <= int(s[1]) <= MAX_BLOB for s in sizes):
        raise ProtocolError("frame declares malformed or oversized blobs")
    blobs = {str(name): _read_exact(stream, int(size)) for name, size in sizes}
    return header, blobs


def array_bytes(array: np.ndarray) -> bytes:
    """``array`` as ``.npy`` bytes (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def bytes_array(data: bytes) -> np.ndarray:
    """``.npy`` bytes as an array; object arrays are refused (``allow_pickle=False``)."""
    return np.load(io.BytesIO(data), allow_pickle=False)


# -- what the device is ------------------------------------------------------------------------
def _captured_fd(fd: int, fn):
    """Run ``fn()`` with file descriptor ``fd`` sent to a temporary file; (result, text written)."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(fd)
        os.dup2(tmp.fileno(), fd)
        try:
            result = fn()
        finally:
            _flush_c_stdio()
            os.dup2(saved, fd)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode(errors="replace")


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers (MNN prints its CPU features with printf, buffered when stdout is no tty)."""
    try:
        import ctypes
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _sys_read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


#: aarch64 ``AT_HWCAP`` / ``AT_HWCAP2`` bits that decide which kernels the runtimes pick (cpuinfo,
#: which XNNPACK and ONNX Runtime use, reads the same words): fp16 arithmetic, dot product, i8mm, SVE, bf16
_HWCAP = {9: "fphp", 10: "asimdhp", 20: "asimddp", 22: "sve", 23: "asimdfhm"}
_HWCAP2 = {1: "sve2", 9: "svei8mm", 12: "svebf16", 13: "i8mm", 14: "bf16"}


def hwcaps() -> list[str]:
    """The CPU features the kernel (or qemu, for an emulated CPU) tells this process, from
    ``/proc/self/auxv``; empty off aarch64."""
    if platform.machine().lower() not in ("aarch64", "arm64"):
        return []
    try:
        with open("/proc/self/auxv", "rb") as f:
            data = f.read()
    except OSError:
        return []
    words = dict(struct.iter_unpack("<QQ", data[: len(data) // 16 * 16]))
    names = [n for bit, n in _HWCAP.items() if words.get(16, 0) >> bit & 1]
    return names + [n for bit, n in _HWCAP2.items() if words.get(26, 0) >> bit & 1]


def cpu_info() -> dict:
    """CPUs the device has, each with its maximum clock (kHz, from ``cpufreq``) where known."""
    n = os.cpu_count() or 1
    cpus = []
    for i in range(n):
        top = _sys_read(f"/sys/devices/system/cpu/cpu{i}/cpufreq/cpuinfo_max_freq")
        cpus.append({"cpu": i, "max_khz": int(top) if top and top.isdigit() else None})
    model = None
    text = _sys_read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            model = value.strip()
    board = _sys_read("/proc/device-tree/model")
    return {"count": n, "cpus": cpus, "model": model, "board": board.strip("\x00") if board else None, "hwcaps": hwcaps()}


def sensors() -> dict:
    """Each CPU's current clock (kHz) and every thermal zone's temperature (degrees C) from ``/sys``."""
    clocks = {}
    for i in range(os.cpu_count() or 1):
        cur = _sys_read(f"/sys/devices/system/cpu/cpu{i}/cpufreq/scaling_cur_freq")
        if cur and cur.isdigit():
            clocks[str(i)] = int(cur)
    temps = {}
    base = "/sys/class/thermal"
    for zone in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        raw = _sys_read(f"{base}/{zone}/temp")
        if raw and raw.lstrip("-").isdigit():
            kind = _sys_read(f"{base}/{zone}/type") or zone
            temps[f"{zone}:{kind}"] = int(raw) / 1000.0
    return {"clock_khz": clocks, "temp_c": temps}


def hello() -> dict:
    """The device: Python, machine, CPUs, and per runtime its version (or why it does not import)
    and the CPU features it detects there."""
    from importlib import metadata
    runtimes, errors, features = {}, {}, {}
    for module, dist in RUNTIMES:
        try:
            (mod, text) = _captured_fd(1, lambda m=module: __import__(m, fromlist=["_"]))
            runtimes[dist] = metadata.version(dist)
        except Exception as exc:  # a runtime missing on the device is an answer, not a failure
            errors[dist] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            continue
        if dist == "MNN":
            line = next((x for x in text.splitlines() if "device supports" in x), "")
            features["mnn"] = line.split(":", 1)[1].strip() if ":" in line else ""
        elif dist == "ncnn":
            prefix = "cpu_support_arm_" if platform.machine().lower() in ("aarch64", "arm64") else "cpu_support_x86_"
            features["ncnn"] = {name.removeprefix("cpu_support_"): bool(getattr(mod, name)())
                                for name in sorted(dir(mod)) if name.startswith(prefix)}
    return {"protocol": PROTOCOL, "pid": os.getpid(), "python": platform.python_version(), "machine": platform.machine(),
            "numpy": np.__version__, "runtimes": runtimes, "errors": errors, "features": features, "cpu": cpu_info()}


def _remove_tree(folder: str) -> None:
    """Remove a folder of links (the stored files they point to stay)."""
    import shutil
    shutil.rmtree(folder, ignore_errors=True)


def _busy_seconds() -> float | None:
    """CPU seconds every core of the device has been busy since boot (``/proc/stat``), or None."""
    text = _sys_read("/proc/stat")
    if not text or not text.startswith("cpu "):
        return None
    fields = [int(x) for x in text.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / (os.sysconf("SC_CLK_TCK") or 100)


def _cool_down(target_c, timeout_s: float) -> float:
    """Wait until every thermal zone is at or below ``target_c`` (None: no wait); seconds waited."""
    if target_c is None:
        return 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        temps = list(sensors()["temp_c"].values())
        if not temps:
            raise ValueError("the device exposes no temperature (/sys/class/thermal): cannot cool down to a temperature")
        if max(temps) <= float(target_c):
            return time.perf_counter() - start
        time.sleep(1.0)
    raise ValueError(f"still above {target_c} C after {timeout_s:.0f} s of cooling down")


# -- sessions: one loaded artifact graph in one runtime ------------------------------------------
class Session:
    """Loads one graph file with the host's settings; ``run(feed, outputs)`` -> {name: array}."""

    def __init__(self, runtime: str, files: dict[str, str], inputs: list[str], outputs: list[str], options: dict,
                 layouts: dict[str, str] | None = None):
        self.runtime, self.files, self.inputs, self.outputs, self.options = runtime, files, inputs, outputs, options
        self.layouts = layouts or {}  # runtime input name -> the manifest's layout (MNN's tap needs it)
        getattr(self, f"_load_{runtime}")()

    def _file(self, suffix: str) -> str:
        hits = [p for name, p in self.files.items() if name.endswith(suffix)]
        if len(hits) != 1:
            raise ValueError(f"expected one *{suffix} file, got {len(hits)}")
        return hits[0]

    def _load_onnxruntime(self) -> None:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        for key, value in self.options.items():
            setattr(opts, key, value)
        self._ort = ort.InferenceSession(self._file(".onnx"), opts, providers=["CPUExecutionProvider"])

    def _load_mnn(self) -> None:
        import MNN
        self._F = MNN.expr
        rt = MNN.nn.create_runtime_manager((self.options,))
        self._module = MNN.nn.load_module_from_file(self._file(".mnn"), self.inputs, self.outputs, runtime_manager=rt)
        self._rt = rt

    def _load_ncnn(self) -> None:
        import ncnn
        net = ncnn.Net()
        for key, value in self.options.items():
            setattr(net.opt, key, value)
        for suffix, load in ((".param", net.load_param), (".bin", net.load_model)):
            if load(self._file(suffix)) != 0:
                raise RuntimeError(f"ncnn could not load the {suffix} file")
        self._ncnn, self._net = ncnn, net

    def _load_tflite(self) -> None:
        from ai_edge_litert.interpreter import Interpreter
        opts = dict(self.options)
        key = opts.pop("signature")
        self._interp = Interpreter(model_path=self._file(".tflite"), **opts)
        self._interp.allocate_tensors()
        signatures = self._interp.get_signature_list()
        key = key if key in signatures else next(iter(signatures))
        self._sig = self._interp.get_signature_runner(key)

    def run(self, feed: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        return getattr(self, f"_run_{self.runtime}")(feed, outputs or self.outputs)

    def _run_onnxruntime(self, feed, outputs):
        return dict(zip(outputs, self._ort.run(outputs, feed), strict=True))

    def _run_mnn(self, feed, outputs):
        F, args = self._F, []
        for name in self.inputs:
            var = F.placeholder(list(feed[name].shape), F.NCHW)
            var.write(feed[name])
            args.append(var)
        outs = self._module.onForward(args)
        return {n: np.array(F.convert(o, F.NCHW).read(), dtype=np.float32, copy=True)
                for n, o in zip(self.outputs, outs, strict=True)}

    def _run_ncnn(self, feed, outputs):
        out = {}
        with self._net.create_extractor() as ex:
            for name, array in feed.items():
                ex.input(name, self._ncnn.Mat(array, batch_index=0).clone())
            for name in outputs:
                ret, mat = ex.extract(name)
                if ret != 0:
                    if outputs is not self.outputs:
                        continue  # a tapped blob the net did not compute
                    raise RuntimeError(f"ncnn extract({name!r}) returned {ret}")
                out[name] = np.array(mat.numpy(batch_index=0), dtype=np.float32, copy=True)
        return out

    def _run_tflite(self, feed, outputs):
        return {k: np.array(v, copy=True) for k, v in self._sig(**feed).items()}

    def tap(self, feed: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        """Every intermediate float tensor of one run, in execution order (MNN and ncnn)."""
        if self.runtime == "ncnn":
            return list(self._run_ncnn(feed, [b for b in self.param_blobs() if b not in feed]).items())
        if self.runtime != "mnn":
            raise ValueError(f"no tensor tap for {self.runtime} on a device")
        import MNN
        interp = MNN.Interpreter(self._file(".mnn"))
        session = interp.createSession(self.options)
        for name in self.inputs:
            array = np.ascontiguousarray(feed[name], dtype=np.float32)
            dim = MNN.Tensor_DimensionType_Tensorflow if self.layouts.get(name) == "NHWC" else MNN.Tensor_DimensionType_Caffe
            interp.getSessionInput(session, name).copyFrom(MNN.Tensor(list(array.shape), MNN.Halide_Type_Float, array, dim))
        out = []

        def end(tensors, info):
            for k, t in enumerate(tensors):
                shape = list(t.getShape())
                if t.getDataType() != MNN.Halide_Type_Float or not shape or 0 in shape:
                    continue
                host = MNN.Tensor(shape, MNN.Halide_Type_Float, np.zeros(shape, np.float32), MNN.Tensor_DimensionType_Caffe)
                t.copyToHostTensor(host)
                name = info.getName()
                out.append((name if k == 0 else f"{name}:{k}", np.array(host.getNumpyData(), np.float32, copy=True).reshape(shape)))
            return True

        interp.runSessionWithCallBackInfo(session, lambda t, i: True, end)
        return out

    def param_blobs(self) -> list[str]:
        """ncnn: the blobs of the ``.param`` file in layer order (each layer's tops)."""
        with open(self._file(".param")) as f:
            lines = f.read().split("\n")
        blobs = []
        for line in lines[2:]:
            fields = line.split()
            if len(fields) >= 4:
                bottoms, tops = int(fields[2]), int(fields[3])
                blobs += fields[4 + bottoms:4 + bottoms + tops]
        return blobs


# -- the request loop ----------------------------------------------------------------------------
class Worker:
    """Serves requests from ``inp`` to ``out`` until ``bye`` or the stream ends."""

    def __init__(self, inp, out, store: str):
        self.inp, self.out, self.store = inp, out, store
        os.makedirs(store, exist_ok=True)
        self.sessions: dict[str, Session] = {}

    def _path(self, sha: str) -> str:
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"not a sha256: {sha[:80]!r}")
        return os.path.join(self.store, sha)

    def op_hello(self, req, blobs):
        return hello(), {}

    def op_missing(self, req, blobs):
        return {"missing": [s for s in req["sha256"] if not os.path.isfile(self._path(s))]}, {}

    def op_put(self, req, blobs):
        data = blobs["file"]
        sha = hashlib.sha256(data).hexdigest()
        if sha != req["sha256"]:
            raise ValueError(f"file arrived with sha256 {sha[:12]}, expected {req['sha256'][:12]}")
        fd, tmp = tempfile.mkstemp(dir=self.store)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self._path(sha))
        return {}, {}

    def op_load(self, req, blobs):
        files = {}
        for name, sha in req["files"].items():
            path = self._path(sha)
            with open(path, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != sha:
                    raise ValueError(f"{name}: the device's copy does not match its sha256")
            # runtimes find a model by its suffix (and ncnn's .bin beside its .param): link by name,
            # in a folder of this process's own (several workers share a board's store)
            folder = self._folder(req["handle"])
            os.makedirs(folder, exist_ok=True)
            dest = os.path.join(folder, os.path.basename(name))
            tmp = f"{dest}.{os.getpid()}.tmp"
            os.symlink(path, tmp)
            os.replace(tmp, dest)
            files[name] = dest
        session = Session(req["runtime"], files, req["inputs"], req["outputs"], req["options"], req.get("layouts"))
        self.sessions[req["handle"]] = session
        return {}, {}

    def _folder(self, handle: str) -> str:
        if not handle.isalnum():
            raise ValueError(f"bad handle {handle[:40]!r}")
        return os.path.join(self.store, "by-name", f"{os.getpid()}-{handle}")

    def _feed(self, req, blobs) -> dict[str, np.ndarray]:
        return {name: np.ascontiguousarray(bytes_array(blobs[name]), dtype=np.float32) for name in req["inputs"]}

    def op_infer(self, req, blobs):
        session = self.sessions[req["handle"]]
        feed = self._feed(req, blobs)
        t0 = time.perf_counter()
        out = session.run(feed, req.get("outputs"))
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "outputs": list(out)}, {k: array_bytes(v) for k, v in out.items()}

    def op_tap(self, req, blobs):
        tapped = self.sessions[req["handle"]].tap(self._feed(req, blobs))
        return {"names": [n for n, _ in tapped]}, {f"{i}": array_bytes(a) for i, (_, a) in enumerate(tapped)}

    def op_measure(self, req, blobs):
        """Time one loaded graph as zoo's measurement children do here: a first call, ``warmup``
        calls, then calls until both ``runs`` calls and ``duration_s`` seconds are done. Optionally
        pinned to ``cpus`` first, and after waiting (at most ``cooldown_timeout_s``) until every
        thermal zone is at or below ``cooldown_c``. Clocks and temperatures are sampled every
        ``sample_s`` seconds between calls (device time)."""
        session = self.sessions[req["handle"]]
        feed = self._feed(req, blobs)
        if req.get("cpus") and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(int(c) for c in req["cpus"]))
        waited = _cool_down(req.get("cooldown_c"), float(req.get("cooldown_timeout_s", 300)))
        t0 = time.perf_counter()
        session.run(feed)
        first = time.perf_counter() - t0
        for _ in range(int(req.get("warmup", 0))):
            session.run(feed)
        times, ends, samples = [], [], []
        sample_s, next_sample = float(req.get("sample_s", 1.0)), 0.0
        start, busy0, cpu0, wall0 = time.time(), _busy_seconds(), time.process_time(), time.perf_counter()
        deadline = wall0 + float(req.get("duration_s", 0))
        while len(times) < int(req.get("runs", 1)) or time.perf_counter() < deadline:
            if time.perf_counter() >= next_sample:
                now = sensors()
                clocks, temps = list(now["clock_khz"].values()), list(now["temp_c"].values())
                samples.append([time.time(), max(clocks) / 1000 if clocks else None, max(temps) if temps else None])
                next_sample = time.perf_counter() + sample_s
            t0 = time.perf_counter()
            session.run(feed)
            times.append(time.perf_counter() - t0)
            ends.append(time.time())
        cpu_s, wall_s, busy1 = time.process_time() - cpu0, time.perf_counter() - wall0, _busy_seconds()
        try:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        except (ImportError, OSError):
            peak = None
        return {"first_s": first, "times_s": times, "ends": ends, "start": start, "cpu_s": cpu_s, "wall_s": wall_s,
                "machine_busy_s": busy1 - busy0 if busy0 is not None and busy1 is not None else None,
                "peak_rss_bytes": peak, "samples": samples, "cooldown_s": waited,
                "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}, {}

    def op_sensors(self, req, blobs):
        return sensors(), {}

    def op_affinity(self, req, blobs):
        cpus = req.get("cpus")
        if cpus is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(int(c) for c in cpus))
        return {"cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}, {}

    def op_unload(self, req, blobs):
        self.sessions.pop(req["handle"], None)
        _remove_tree(self._folder(req["handle"]))
        return {}, {}

    def serve(self) -> None:
        while True:
            try:
                req, blobs = receive(self.inp)
            except ProtocolError:
                return
            op = req.get("op", "")
            if op == "bye":
                for handle in list(self.sessions):
                    _remove_tree(self._folder(handle))
                send(self.out, {"ok": True})
                return
            handler = getattr(self, f"op_{op}", None)
            try:
                if handler is None:
                    raise ValueError(f"unknown request {op!r}")
                reply, out_blobs = handler(req, blobs)
                send(self.out, dict(reply, ok=True), out_blobs)
            except Exception as exc:  # reported to the host as one line; the worker keeps serving
                send(self.out, {"ok": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500]})


def main() -> None:
    """Serve on the process's stdin/stdout; anything a runtime prints goes to stderr instead."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # native code printing on stdout must not corrupt the frames
    store = os.environ.get("ZOO_DEVICE_STORE") or os.path.join(os.path.expanduser("~"), ".cache", "zoo-device")
    Worker(sys.stdin.buffer, out, store).serve()


if __name__ == "__main__":
    main()
