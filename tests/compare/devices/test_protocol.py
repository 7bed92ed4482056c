"""The device frame protocol (``compare.devices.worker``): arrays without pickles, bounded frames."""
from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from compare.devices import worker as proto


def test_a_frame_round_trips_header_and_arrays() -> None:
    buf = io.BytesIO()
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    proto.send(buf, {"op": "infer", "handle": "h1"}, {"x": proto.array_bytes(a)})
    buf.seek(0)
    header, blobs = proto.receive(buf)
    assert header == {"op": "infer", "handle": "h1"} and np.array_equal(proto.bytes_array(blobs["x"]), a)


def test_object_arrays_are_refused() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        proto.bytes_array(buf.getvalue())


@pytest.mark.parametrize("header", [{"blobs": [["x", proto.MAX_BLOB + 1]]}, {"blobs": "x"}, {"blobs": [["x"]]}])
def test_malformed_or_oversized_blobs_are_a_protocol_error(header) -> None:
    data = json.dumps(header).encode()
    with pytest.raises(proto.ProtocolError):
        proto.receive(io.BytesIO(struct.pack(">I", len(data)) + data))


def test_a_cut_stream_and_a_huge_header_are_protocol_errors() -> None:
    with pytest.raises(proto.ProtocolError, match="stream closed"):
        proto.receive(io.BytesIO(b"\x00\x00"))
    with pytest.raises(proto.ProtocolError, match="not a zoo device stream"):
        proto.receive(io.BytesIO(struct.pack(">I", proto.MAX_HEADER + 1)))


def test_the_worker_serves_until_the_stream_ends_and_reports_errors_in_one_line(tmp_path) -> None:
    inp, out = io.BytesIO(), io.BytesIO()
    proto.send(inp, {"op": "put", "sha256": "0" * 64}, {"file": b"not that"})
    proto.send(inp, {"op": "nonsense"})
    proto.send(inp, {"op": "missing", "sha256": ["a" * 64]})
    inp.seek(0)
    proto.Worker(inp, out, str(tmp_path)).serve()
    out.seek(0)
    replies = [proto.receive(out)[0] for _ in range(3)]
    assert not replies[0]["ok"] and "expected 000000000000" in replies[0]["error"]
    assert not replies[1]["ok"] and replies[1]["error"] == "ValueError: unknown request 'nonsense'"
    assert replies[2] == {"ok": True, "missing": ["a" * 64]}
    assert list(tmp_path.iterdir()) == []  # nothing stored from a file that did not match its sha256
