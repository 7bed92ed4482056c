"""ExecuTorch runner: ``executorch.runtime`` (the pip wheel's C++ runtime with the XNNPACK backend).

``Runtime.get().load_program(model.pte)`` -> ``load_method("forward")`` -> ``execute([...])``.
A method's inputs and outputs are positional; every binding's ``runtime_name`` says which position
it is (``forward:input:1``, ``forward:output:2``, :func:`exporters.executorch.runtime_name`'s form)
and the runner resolves names, never the manifest's order; the positions' shapes are checked
against the program's ``MethodMeta`` at load.

Threads: the wheel's XNNPACK delegate runs on ExecuTorch's process-wide threadpool, which the
pybindings resize with ``_unsafe_reset_threadpool(n)`` (experimental, and unsafe while a method
runs): the runner sets it at load to :attr:`threads` and reads it back with
``_threadpool_get_thread_count()``. It is one pool per process: two ExecuTorch runners with
different thread counts in one process take the last one loaded (zoo times each runtime x threads
in a process of its own).

The runtime imports torch (``executorch.extension.pybindings.portable_lib`` loads libtorch
first), so an ExecuTorch process pays torch's import, unlike the other runtimes'.

Profiling: ETDump (``load_program(enable_etdump=True)``, ``write_etdump_result_to_file``) gives
each delegate call and portable kernel its time (:mod:`compare.runners.executorch_profile`).
"""
from __future__ import annotations

import numpy as np

from compare.runners.base import ArtifactRunner, native_quiet
from zoo.errors import ZooError
from zoo.requirements import require

METHOD = "forward"
PORTABLE_LIB = "executorch.extension.pybindings.portable_lib"


def position(name: str, kind: str) -> int:
    """The position a runtime name binds (``forward:output:2`` -> 2); a ZooError if it names another kind or method."""
    parts = name.split(":")
    if len(parts) != 3 or parts[0] != METHOD or parts[1] != kind or not parts[2].isdigit():
        raise ZooError(f"{name!r} is not an ExecuTorch {kind} binding ({METHOD}:{kind}:<index>)")
    return int(parts[2])


def set_threadpool(threads: int) -> int:
    """Resize ExecuTorch's process-wide threadpool to ``threads``; the count it then reports."""
    lib = require(PORTABLE_LIB, "executorch", "ExecuTorch")
    if lib._threadpool_get_thread_count() != threads:
        lib._unsafe_reset_threadpool(int(threads))
    return int(lib._threadpool_get_thread_count())


class ExecutorchRunner(ArtifactRunner):
    format = "executorch"

    def settings(self) -> dict:
        """The method run and the threadpool size."""
        return {"method": METHOD, "threads": self.threads}

    def load_program(self, **kwargs):
        """The artifact's program, loaded by ExecuTorch's runtime (``kwargs``: ``enable_etdump``, ...)."""
        with native_quiet():  # torch's pytree warning on import, cpuinfo's "Failed to open midr file" lines
            runtime = require("executorch.runtime", self.extra, "ExecuTorch")
            return runtime.Runtime.get().load_program(str(self.model_file(".pte")), **kwargs)

    def bind(self, method) -> None:
        """Resolve every binding to its position in ``method`` and check shapes with its metadata."""
        meta = method.metadata
        self._in_pos = {b.runtime_name: position(b.runtime_name, "input") for b in self.manifest.inputs}
        self._out_pos = {b.runtime_name: position(b.runtime_name, "output") for b in self.manifest.outputs}
        for kind, bindings, count, info in (("input", self.manifest.inputs, meta.num_inputs(), meta.input_tensor_meta),
                                            ("output", self.manifest.outputs, meta.num_outputs(), meta.output_tensor_meta)):
            pos = self._in_pos if kind == "input" else self._out_pos
            if sorted(pos.values()) != list(range(count)):
                raise ZooError(f"{self.name}: the manifest binds {kind}s {sorted(pos.values())}, the method has {count}")
            for b in bindings:
                sizes = list(info(pos[b.runtime_name]).sizes())
                if sizes != list(b.shape):
                    raise ZooError(f"{self.name}: {kind} {b.runtime_name} ({b.name}) is {sizes} in the program, {b.shape} in the manifest")

    def _load(self) -> None:
        self._torch = require("torch", self.extra, "PyTorch (ExecuTorch's runtime loads it)")
        self._program = self.load_program()
        with native_quiet():
            self.threads_in_use = set_threadpool(self.threads)
            self._method = self._program.load_method(METHOD)
        if self._method is None:
            raise ZooError(f"{self.name}: the program has no method {METHOD!r}")
        self.bind(self._method)

    def _close(self) -> None:
        self._method = self._program = None

    def arguments(self, feed: dict[str, np.ndarray]) -> list:
        """The method's positional inputs from ``{runtime_name: array}``."""
        args = [None] * len(self._in_pos)
        for name, value in feed.items():
            args[self._in_pos[name]] = value if isinstance(value, self._torch.Tensor) else self._torch.from_numpy(value)
        return args

    def keep_input(self, runtime_name: str, value: np.ndarray) -> object:
        """A torch tensor owning a copy of ``value``, fed as it is on every call (a split cache)."""
        return self._torch.from_numpy(np.array(value, dtype=np.float32, copy=True))

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self._method.execute(self.arguments(feed))
        return {name: outs[i].numpy() for name, i in self._out_pos.items()}
