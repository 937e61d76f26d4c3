"""A real Ray cluster on this machine for the tests: a head and two worker nodes, each its own
set of processes (raylet, object store, workers), as `ray start` on three machines gives."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 100 * 1024 * 1024},
    )
    for _ in range(2):
        c.add_node(num_cpus=1, object_store_memory=100 * 1024 * 1024)
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture(scope="session")
def tracekit() -> str:
    """The tracekit binary the tests run (scripts/test builds it and sets TRACEKIT_BIN)."""
    binary = os.environ.get("TRACEKIT_BIN") or str(REPO / "target" / "debug" / "tracekit")
    if not Path(binary).exists():
        subprocess.run(["cargo", "build", "--quiet", "--bin", "tracekit"], cwd=REPO, check=True)
    return binary


def corpus() -> Path | None:
    """The third-party corpus, as the Rust tests find it (TRACEKIT_CORPUS, target/corpus)."""
    for d in (os.environ.get("TRACEKIT_CORPUS"), REPO / "target" / "corpus"):
        if d and (Path(d) / "MANIFEST.tsv").exists():
            return Path(d)
    return None
