"""`tracekit-dist split --by stream` on a three-node Ray cluster writes what `tracekit split`
writes: the same files with the same bytes, the same index and report, for several shard and
partition counts; also when a worker node dies in the middle, and when the driver is stopped
and run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, corpus
from ray.cluster_utils import Cluster
from test_info import dist

ROTATED = str(REPO / "testdata" / "rotated")


def files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def split_args(tmp: Path, name: str, flags: list[str], inputs: list[str]) -> list[str]:
    out = tmp / name
    return ["split", "-q", *flags, "-o", str(out), "--index", f"{out}.csv", *inputs]


def same_as_one_machine(
    tracekit: str,
    tmp: Path,
    got: subprocess.CompletedProcess[bytes],
    flags: list[str],
    inputs: list[str],
) -> None:
    one = subprocess.run([tracekit, *split_args(tmp, "one", flags, inputs)], capture_output=True)
    assert got.returncode == one.returncode, got.stderr.decode()
    many, single = files(tmp / "many"), files(tmp / "one")
    assert len(single) > 10
    assert sorted(many) == sorted(single)
    assert many == single, "same names, other bytes"
    assert (tmp / "many.csv").read_bytes() == (tmp / "one.csv").read_bytes()
    report = [line for line in got.stderr.splitlines() if line.startswith(b"tracekit split:")]
    assert report == [one.stderr.splitlines()[0].replace(b"/one", b"/many")]


@pytest.mark.parametrize(("shards", "partitions"), [(1, 1), (4, 3), (9, 7)])
@pytest.mark.parametrize("flags", [["--by", "stream"], ["--icmp-with-flow", "--inner"]])
def test_split_equals_one_machine(
    cluster: Cluster, tracekit: str, tmp_path: Path, shards: int, partitions: int, flags: list[str]
) -> None:
    # Conversations that span files, a reused tuple, fragments before their first fragment,
    # ICMP errors before what they quote, VXLAN (testdata/make_rotated.py).
    got = dist(
        cluster,
        tracekit,
        tmp_path / "state",
        [
            *("--shards", str(shards), "--partitions", str(partitions)),
            *split_args(tmp_path, "many", flags, [ROTATED]),
        ],
    )
    same_as_one_machine(tracekit, tmp_path, got, flags, [ROTATED])
    assert not list((tmp_path / "state").glob("*.plan.json")), "a finished split leaves no state"


def test_split_of_the_corpus_equals_one_machine(
    cluster: Cluster, tracekit: str, tmp_path: Path
) -> None:
    c = corpus()
    if c is None:
        pytest.skip("no third-party corpus (scripts/fetch-corpus)")
    flags = ["--by", "stream"]
    got = dist(
        cluster,
        tracekit,
        tmp_path / "state",
        ["--shards", "12", "--partitions", "5", *split_args(tmp_path, "many", flags, [str(c)])],
    )
    same_as_one_machine(tracekit, tmp_path, got, flags, [str(c)])


def slow(tmp: Path, tracekit: str) -> str:
    """A tracekit whose reduce tasks take 3 s more, each marked in-flight while it runs (so a
    test can act while they run)."""
    wrapper = tmp / "slow-tracekit"
    flight = tmp / "inflight"
    flight.mkdir()
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$4" = reduce ]; then\n'
        f'  touch "{flight}/$5"; sleep 3; "{tracekit}" "$@"; s=$?; rm -f "{flight}/$5"; exit $s\n'
        "fi\n"
        f'exec "{tracekit}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def wait_for(what: Callable[[], bool], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def driver(address: str, tracekit: str, state: Path, args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "tracekit_dist.cli", "--address", address, "-q"),
            *("--tracekit", tracekit, "--state", str(state), *args),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_a_worker_node_killed_during_the_reduces_changes_nothing(
    tracekit: str, tmp_path: Path
) -> None:
    # A cluster of its own: this test takes a node away.
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    try:
        wrapper = slow(tmp_path, tracekit)
        flags = ["--by", "stream"]
        run = driver(
            c.address,
            wrapper,
            tmp_path / "state",
            ["--shards", "3", "--partitions", "6", *split_args(tmp_path, "many", flags, [ROTATED])],
        )
        # One reduce in flight on each of the three nodes (one CPU each): kill a worker node.
        wait_for(lambda: len(list((tmp_path / "inflight").iterdir())) >= 3)
        c.remove_node(workers[0], allow_graceful=False)
        out, err = run.communicate(timeout=180)
        got = subprocess.CompletedProcess(run.args, run.returncode, out, err)
        same_as_one_machine(tracekit, tmp_path, got, flags, [ROTATED])
    finally:
        c.shutdown()


def test_a_stopped_driver_resumes_with_the_same_outputs(
    cluster: Cluster, tracekit: str, tmp_path: Path
) -> None:
    wrapper = slow(tmp_path, tracekit)
    flags = ["--by", "stream", "--icmp-with-flow"]
    args = ["--shards", "4", "--partitions", "6", *split_args(tmp_path, "many", flags, [ROTATED])]
    state = tmp_path / "state"
    run = driver(cluster.address, wrapper, state, args)
    # Stopped (driver and its tasks' processes) once some reduce has committed.
    wait_for(lambda: any(state.glob("*.plan.json.d/reduce-*.json")))
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    committed = {p: p.stat().st_mtime_ns for p in state.glob("*.plan.json.d/*.json")}
    assert any("reduce" in p.name for p in committed)
    assert not (tmp_path / "many").exists()
    again = dist(cluster, wrapper, state, args)
    same_as_one_machine(tracekit, tmp_path, again, flags, [ROTATED])
