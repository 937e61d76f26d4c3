"""`tracekit-dist flows` on a three-node Ray cluster prints what `tracekit flows` prints, byte
for byte, for several shard and partition counts; a set whose files overlap in time (which
no partitioning answers exactly) is run on one node instead, with the same output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import REPO, corpus
from ray.cluster_utils import Cluster
from test_info import dist

ROTATED = str(REPO / "testdata" / "rotated")


@pytest.mark.parametrize(("shards", "partitions"), [(1, 1), (4, 3), (9, 7)])
@pytest.mark.parametrize("flags", [[], ["--format", "csv"], ["--top", "5", "--by", "packets"]])
def test_flows_equals_one_machine(
    cluster: Cluster, tracekit: str, tmp_path: Path, shards: int, partitions: int, flags: list[str]
) -> None:
    one = subprocess.run([tracekit, "flows", *flags, ROTATED], capture_output=True)
    got = dist(
        cluster,
        tracekit,
        tmp_path / "state",
        ["--shards", str(shards), "--partitions", str(partitions), "flows", *flags, ROTATED],
    )
    assert got.returncode == one.returncode == 0, got.stderr.decode()
    assert got.stdout == one.stdout
    assert len(one.stdout.splitlines()) >= 5
    assert got.stderr == one.stderr


def test_files_overlapping_in_time_run_on_one_node(
    cluster: Cluster, tracekit: str, tmp_path: Path
) -> None:
    c = corpus()
    if c is None:
        pytest.skip("no third-party corpus (scripts/fetch-corpus)")
    one = subprocess.run([tracekit, "flows", str(c)], capture_output=True)
    got = dist(cluster, tracekit, tmp_path / "state", ["--shards", "8", "flows", str(c)])
    assert got.returncode == one.returncode == 1, got.stderr.decode()
    assert got.stdout == one.stdout
    notice = b"running tracekit flows on this node instead\n"
    assert notice in got.stderr
    assert got.stderr.split(notice, 1)[1] == one.stderr
    assert b"do not follow one another" in got.stderr
