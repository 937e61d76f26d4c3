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
    """The third-party corpus, found as the Rust tests find it: TRACEKIT_CORPUS, else
    target/corpus, else a directory `corpus` beside the clone or one of its nearest
    ancestors that holds the manifest's captures."""
    env = os.environ.get("TRACEKIT_CORPUS")
    if env:
        return Path(env) if holds_corpus(Path(env)) else None
    if holds_corpus(REPO / "target" / "corpus"):
        return REPO / "target" / "corpus"
    for up in list(REPO.resolve().parents)[:4]:
        try:
            beside = sorted(d / "corpus" for d in up.iterdir() if d.is_dir())
        except OSError:
            continue
        for d in beside:
            if holds_corpus(d):
                return d
    return None


def holds_corpus(d: Path) -> bool:
    """A manifest and the first capture it lists (not a clone's `corpus/`, which has only the
    manifest)."""
    try:
        rows = (d / "MANIFEST.tsv").read_text().splitlines()
    except OSError:
        return False
    return len(rows) > 1 and (d / rows[1].split("\t")[0]).is_file()
