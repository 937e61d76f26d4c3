"""`tracekit-dist analyze --batch DIR_A DIR_B -o OUT` on a three-node Ray cluster writes what
`tracekit analyze --batch` writes: the same reports and summaries, the same messages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from ray.cluster_utils import Cluster

LABS = ["firewall", "nat", "reset", "clamp", "synproxy", "router", "close", "strip"]


def directories(root: Path) -> None:
    """Client-side and server-side captures of the lab pairs under other names, a file that
    shares nothing and one that is no capture."""
    a, b = root / "A", root / "B"
    a.mkdir(parents=True)
    b.mkdir()
    for lab in LABS:
        shutil.copy(REPO / "testdata" / f"{lab}-client.pcapng", a / f"{lab}-c.pcapng")
        shutil.copy(REPO / "testdata" / f"{lab}-server.pcapng", b / f"{lab}-s.pcapng")
    shutil.copy(REPO / "testdata" / "handshake.pcap", a / "lone.pcap")
    (b / "notes.txt").write_text("not a capture\n")


@pytest.mark.parametrize("shards", [2, 5])
def test_analyze_batch_equals_one_machine(
    cluster: Cluster, tracekit: str, tmp_path: Path, shards: int
) -> None:
    one, many = tmp_path / "one", tmp_path / "many"
    directories(one)
    directories(many)
    args = ["analyze", "--batch", "A", "B", "-o", "out"]
    single = subprocess.run([tracekit, *args], capture_output=True, cwd=one)
    got = subprocess.run(
        [
            *(sys.executable, "-m", "tracekit_dist.cli", "--address", cluster.address, "-q"),
            *("--tracekit", tracekit, "--shards", str(shards), *args),
        ],
        capture_output=True,
        cwd=many,
    )
    assert got.returncode == single.returncode == 1, got.stderr.decode()
    assert got.stdout == single.stdout
    assert got.stderr == single.stderr
    reports = {p.name: p.read_bytes() for p in sorted((one / "out").iterdir())}
    assert len(reports) == 3 * len(LABS) + 3
    assert {p.name: p.read_bytes() for p in sorted((many / "out").iterdir())} == reports
