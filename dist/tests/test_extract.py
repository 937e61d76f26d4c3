"""`tracekit-dist extract --filter ...` on a three-node Ray cluster writes the file `tracekit
extract` writes, byte for byte, with the same report; a set the tasks cannot select as one
machine does (pcapng inputs) is run on one node instead."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import REPO
from ray.cluster_utils import Cluster
from test_info import dist

ROTATED = str(REPO / "testdata" / "rotated")


@pytest.mark.parametrize("shards", [1, 4])
@pytest.mark.parametrize(
    ("selection", "out"),
    [(["--filter", "udp or icmp"], "x.pcap"), (["--filter", "tcp port 80"], "x.pcap.gz")],
)
def test_extract_equals_one_machine(
    cluster: Cluster, tracekit: str, tmp_path: Path, shards: int, selection: list[str], out: str
) -> None:
    one, many = tmp_path / f"one-{out}", tmp_path / f"many-{out}"
    single = subprocess.run(
        [tracekit, "extract", *selection, "-o", str(one), ROTATED], capture_output=True
    )
    got = dist(
        cluster,
        tracekit,
        tmp_path / "state",
        ["--shards", str(shards), "extract", *selection, "-o", str(many), ROTATED],
    )
    assert got.returncode == single.returncode == 0, got.stderr.decode()
    assert got.stderr.replace(str(many).encode(), str(one).encode()) == single.stderr
    assert one.stat().st_size > 100
    assert many.read_bytes() == one.read_bytes()


def test_pcapng_inputs_are_extracted_on_one_node(
    cluster: Cluster, tracekit: str, tmp_path: Path
) -> None:
    files = [str(REPO / "testdata" / f) for f in ("firewall-client.pcapng", "handshake.pcap")]
    one, many = tmp_path / "one.pcapng", tmp_path / "many.pcapng"
    single = subprocess.run(
        [tracekit, "extract", "--filter", "tcp", "-o", str(one), *files], capture_output=True
    )
    got = dist(
        cluster,
        tracekit,
        tmp_path / "state",
        ["extract", "--filter", "tcp", "-o", str(many), *files],
    )
    assert got.returncode == single.returncode == 0, got.stderr.decode()
    assert b"running tracekit extract on this node instead" in got.stderr
    assert many.read_bytes() == one.read_bytes()
