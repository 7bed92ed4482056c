"""compare.tracking.ray_address: ``--ray`` checked before any work, in one line."""
from __future__ import annotations

import socket

import pytest

from compare.tracking.ray_address import RayAddress, check_reachable, parse_ray_address
from tests.helpers.tracking import run_cli
from zoo.datasets.synthetic import write_dataset
from zoo.errors import UsageError, ZooError


@pytest.mark.parametrize("text, parsed", [
    ("local", RayAddress("local", "local")),
    ("auto", RayAddress("auto", "auto")),
    ("10.0.0.5:6379", RayAddress("10.0.0.5:6379", "cluster", "10.0.0.5", 6379)),
    ("ray://head.lab:10001", RayAddress("ray://head.lab:10001", "cluster", "head.lab", 10001)),
    ("[::1]:6379", RayAddress("[::1]:6379", "cluster", "::1", 6379)),
])
def test_the_forms_ray_takes(text, parsed) -> None:
    assert parse_ray_address(text) == parsed


@pytest.mark.parametrize("text", ["not an address", "head", "head:", ":6379", "head:99999", "head:0", "http://head:80"])
def test_a_malformed_address_is_a_usage_error(text) -> None:
    with pytest.raises(UsageError, match="is not a Ray address: give 'local', 'auto', HOST:PORT"):
        parse_ray_address(text)


def _closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: a connection is refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_nobody_listens_on_is_refused_at_once() -> None:
    port = _closed_port()
    with pytest.raises(ZooError, match=f"cannot connect to Ray at 127.0.0.1:{port}: connection refused"):
        check_reachable(parse_ray_address(f"127.0.0.1:{port}"), timeout=2)
    with socket.create_server(("127.0.0.1", 0)) as listening:
        check_reachable(parse_ray_address(f"127.0.0.1:{listening.getsockname()[1]}"), timeout=2)


@pytest.mark.parametrize("kind", ["malformed", "closed"])
def test_eval_run_checks_the_address_before_any_work(tmp_path, capfd, kind) -> None:
    """Before: exit 1 for a malformed address after the plan was printed; minutes of retries and
    ~20 ``gcs_client`` lines for a closed port."""
    write_dataset(tmp_path / "otb", "otb", count=1, frames=3)
    address = "head:99999" if kind == "malformed" else f"127.0.0.1:{_closed_port()}"
    code, _, stderr = run_cli(capfd, "eval", "run", "base-c128", "--dataset", "otb", "--root", str(tmp_path / "otb"),
                              "--runtime", "pytorch", "--results", str(tmp_path / "results"), "--ray", address)
    assert code == (2 if kind == "malformed" else 1) and len(stderr.strip().splitlines()) == 1, stderr
    assert "gcs_client" not in stderr and not (tmp_path / "results").exists()
