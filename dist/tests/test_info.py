"""`tracekit-dist info` on a three-node Ray cluster prints what `tracekit info` prints, byte for
byte, with the same exit status, for several shard counts; an interrupted run resumes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, corpus
from ray.cluster_utils import Cluster


def inputs(tmp: Path) -> list[str]:
    """A directory of captures (testdata, and a few corpus files when there is a corpus),
    with a file that is no capture and a damaged capture among them."""
    d = tmp / "set"
    d.mkdir()
    for name in ["handshake.pcap", "handshake-ns.pcap", "mixed.pcapng", "handshake.pcap.gz"]:
        shutil.copy(REPO / "testdata" / name, d / name)
    (d / "README.txt").write_text("not a capture\n")
    whole = (REPO / "testdata" / "handshake.pcap").read_bytes()
    (d / "cut.pcap").write_bytes(whole[: len(whole) - 7])
    sub = d / "more"
    sub.mkdir()
    c = corpus()
    if c is not None:
        for name in ["tcpdump_pptp_be.pcap", "ppp_nanosecs_big_endian.pcap"]:
            shutil.copy(c / name, sub / name)
    for n in range(5):
        shutil.copy(REPO / "testdata" / "firewall-client.pcapng", sub / f"rot-{n:03}.pcapng")
    return [str(d), str(REPO / "testdata" / "close-server.pcapng")]


def dist(
    cluster: Cluster, tracekit: str, state: Path, args: list[str], quiet: bool = True
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tracekit_dist.cli",
            "--address",
            cluster.address,
            *(["-q"] if quiet else []),
            "--tracekit",
            tracekit,
            "--state",
            str(state),
            *args,
        ],
        capture_output=True,
    )


@pytest.mark.parametrize("shards", [0, 1, 3])
@pytest.mark.parametrize("flags", [[], ["--json"], ["--json", "--hash", "sha256,blake3"]])
def test_info_equals_one_machine(
    cluster: Cluster, tracekit: str, tmp_path: Path, shards: int, flags: list[str]
) -> None:
    files = inputs(tmp_path)
    one = subprocess.run([tracekit, "info", "-q", *flags, *files], capture_output=True)
    got = dist(
        cluster,
        tracekit,
        tmp_path / "state",
        ["--shards", str(shards), "info", "-q", *flags, *files],
    )
    assert got.stdout == one.stdout, got.stderr.decode()
    assert got.returncode == one.returncode == 1, got.stderr.decode()
    assert b"passed over 1 file(s)" in got.stderr


def test_tasks_run_on_every_node(cluster: Cluster, tracekit: str, tmp_path: Path) -> None:
    files = inputs(tmp_path)
    got = dist(cluster, tracekit, tmp_path / "state", ["info", *files], quiet=False)
    assert got.returncode == 1, got.stderr.decode()
    # One task per input, more than the cluster's three CPUs (one per node): the tasks spread
    # over the nodes (Ray may still leave one idle for tasks this short).
    assert re.search(rb"task\(s\) done on [23] node\(s\), 0 failed", got.stderr), got.stderr


def test_an_interrupted_run_resumes_and_a_changed_set_is_planned_again(
    cluster: Cluster, tracekit: str, tmp_path: Path
) -> None:
    files = inputs(tmp_path)
    state = tmp_path / "state"
    args = ["--shards", "4", "info", "--json", *files]
    first = dist(cluster, tracekit, state, args)
    plans = list(state.glob("*.plan.json"))
    assert len(plans) == 1
    work = Path(str(plans[0]) + ".d")
    committed = sorted(work.iterdir())
    assert len(committed) == 4
    # As if the driver had been stopped after two tasks: the others run again, the two stay.
    for p in committed[2:]:
        p.unlink()
    kept = {p: p.stat().st_mtime_ns for p in committed[:2]}
    again = dist(cluster, tracekit, state, args)
    assert again.stdout == first.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert sorted(work.iterdir()) == committed
    # A new file in the set: a new plan, nothing of the old one reused.
    shutil.copy(REPO / "testdata" / "handshake.pcap", Path(files[0]) / "new.pcap")
    changed = dist(cluster, tracekit, state, args)
    one = subprocess.run([tracekit, "info", "-q", "--json", *files], capture_output=True)
    assert changed.stdout == one.stdout
    assert b"new.pcap" in changed.stdout


def test_refused_commands_say_why(cluster: Cluster, tracekit: str, tmp_path: Path) -> None:
    got = dist(
        cluster,
        tracekit,
        tmp_path,
        ["merge", "-o", str(tmp_path / "m.pcap"), str(REPO / "testdata" / "handshake.pcap")],
    )
    assert got.returncode == 2
    assert b"cannot be distributed yet" in got.stderr


def test_without_an_address_a_local_instance_runs_it(tracekit: str, tmp_path: Path) -> None:
    files = inputs(tmp_path)
    one = subprocess.run([tracekit, "info", "-q", "--json", *files], capture_output=True)
    got = subprocess.run(
        [
            *(sys.executable, "-m", "tracekit_dist.cli", "--tracekit", tracekit),
            *("--state", str(tmp_path / "state"), "info", "-q", "--json", *files),
        ],
        capture_output=True,
    )
    assert got.stdout == one.stdout, got.stderr.decode()
    assert b"task(s) done on 1 node(s)" in got.stderr, got.stderr.decode()


def test_relative_paths_read_as_on_one_machine(
    cluster: Cluster, tracekit: str, tmp_path: Path
) -> None:
    inputs(tmp_path)
    one = subprocess.run([tracekit, "info", "-q", "set"], capture_output=True, cwd=tmp_path)
    got = subprocess.run(
        [
            *(sys.executable, "-m", "tracekit_dist.cli", "--address", cluster.address, "-q"),
            *("--tracekit", tracekit, "info", "-q", "set"),
        ],
        capture_output=True,
        cwd=tmp_path,
    )
    assert got.stdout == one.stdout, got.stderr.decode()
    assert b"File name:            set/handshake.pcap\n" in got.stdout
