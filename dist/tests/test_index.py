"""`tracekit-dist index` on a three-node Ray cluster writes the index `tracekit index` writes,
byte for byte (its parts, flow table and manifest), also when the set grows; queries from it
answer as from the captures."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import REPO
from ray.cluster_utils import Cluster
from test_info import dist


def tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_index_equals_one_machine_and_grows_the_same(
    cluster: Cluster, tracekit: str, tmp_path: Path
) -> None:
    rotated = sorted((REPO / "testdata" / "rotated").iterdir())
    captures = tmp_path / "set"
    captures.mkdir()
    for f in rotated[:5]:
        shutil.copy(f, captures / f.name)
    # Both indexes are made at one path (the index records absolute paths), each kept aside
    # while the other is brought up to date.
    ix = tmp_path / "ix"

    def both(what: str) -> None:
        runs = {}
        for name in ("one", "many"):
            aside = tmp_path / f"ix-{name}"
            if aside.exists():
                aside.rename(ix)
            args = ["index", "-q", "-o", str(ix), str(captures)]
            if name == "one":
                runs[name] = subprocess.run([tracekit, *args], capture_output=True)
            else:
                state = tmp_path / "state"
                runs[name] = dist(cluster, tracekit, state, ["--shards", "3", *args])
            ix.rename(aside)
        assert runs["many"].returncode == runs["one"].returncode == 0, runs["many"].stderr
        assert runs["many"].stderr == runs["one"].stderr, what
        one, many = tree(tmp_path / "ix-one"), tree(tmp_path / "ix-many")
        assert len(one) > 3
        assert one == many, what

    both("five files")
    for f in rotated[5:]:
        shutil.copy(f, captures / f.name)
    both("four more")
    (tmp_path / "ix-many").rename(ix)
    from_index = subprocess.run([tracekit, "flows", "--index", str(ix)], capture_output=True)
    from_captures = subprocess.run(
        [tracekit, "flows", *(str(p) for p in sorted(captures.iterdir()))], capture_output=True
    )
    assert from_index.stdout == from_captures.stdout
