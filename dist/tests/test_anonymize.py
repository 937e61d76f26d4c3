"""`tracekit-dist anonymize` on a three-node Ray cluster writes what `tracekit anonymize`
writes: the same files with the same bytes, the same mapping, the same messages; the key stays
in its file (the plan holds its fingerprint only)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster
from test_info import dist, inputs


def files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("shards", [0, 2])
def test_anonymize_equals_one_machine(
    cluster: Cluster, tracekit: str, tmp_path: Path, shards: int
) -> None:
    sources = inputs(tmp_path)
    key = tmp_path / "k.key"
    subprocess.run([tracekit, "keygen", "-o", str(key)], check=True, capture_output=True)

    def args(out: str) -> list[str]:
        return [
            "anonymize",
            "--key-file",
            str(key),
            "--verify",
            "-o",
            str(tmp_path / out),
            "--mapping-out",
            str(tmp_path / f"{out}.csv"),
            *sources,
        ]

    one = subprocess.run([tracekit, *args("one")], capture_output=True)
    got = dist(cluster, tracekit, tmp_path / "state", ["--shards", str(shards), *args("many")])
    assert got.returncode == one.returncode == 1, got.stderr.decode()
    assert files(tmp_path / "many") == files(tmp_path / "one")
    assert len(files(tmp_path / "one")) >= 10
    assert (tmp_path / "many.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert got.stderr.replace(b"many", b"one") == one.stderr
    secret = key.read_text().strip()
    for plan in (tmp_path / "state").rglob("*"):
        if plan.is_file():
            assert secret not in plan.read_text(errors="replace")
