"""`tracekit-dist [--address ADDR] COMMAND ARGS...`: `tracekit COMMAND ARGS...` on a Ray cluster.

The steps are tracekit's own (`tracekit step plan`, `step task`, `step finish`): the plan fixes
the inputs, their order and the tasks; each task is a pure function of (plan, stage, number)
that commits its result atomically beside the plan, so Ray may retry or repeat it; the finish
writes exactly what the command writes on one machine. Ray only schedules: no packet byte
passes through it.

The tracekit binary and the inputs must be at the same paths on every node (shared storage),
and so must the state directory, where plans and committed results stay: running the same
command again reuses them, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import ray

RETRIES = 3
# `tracekit step finish`'s exit status when the set cannot be answered by partitions exactly.
NOT_EXACT = 3
# Tasks per CPU when --shards is not given: enough to balance files of unequal sizes, few
# enough that the cost of a task (a process, a Ray round trip: about 10 ms here) stays small
# (bench/dist.sh: info over 200 files took 1.9 s as 200 tasks on three CPUs).
SHARDS_PER_CPU = 4


@dataclass
class Failure:
    """A task that failed after its retries."""

    stage: str
    task: int
    inputs: list[str]
    why: str


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tracekit-dist",
        description=(
            "Run `tracekit COMMAND ARGS...` on a Ray cluster with the same result as on one "
            "machine (info, anonymize, split --by stream, flows, index, extract with a filter, "
            "analyze --batch)."
        ),
    )
    parser.add_argument(
        "--address",
        help="the Ray cluster to join (head:6379, ray://head:10001); default: start one here",
    )
    parser.add_argument(
        "--tracekit",
        default=os.environ.get("TRACEKIT_BIN") or shutil.which("tracekit") or "tracekit",
        help="the tracekit binary, at the same path on every node (default: $TRACEKIT_BIN, "
        "else tracekit on PATH)",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        help="tasks per stage: contiguous ranges of the inputs of about equal bytes (default: "
        f"{SHARDS_PER_CPU} per CPU of the cluster, at most one per input)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=0,
        help="reduce tasks of a shuffle (split --by stream, flows, index), each the "
        "conversations of some address pairs (default: as many as shards)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=Path(".tracekit-dist"),
        help="where plans and committed task results stay (default: ./.tracekit-dist)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress")
    parser.add_argument("command", help="the tracekit command (info, ...)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    return parser.parse_args(argv)


def plan_path(state: Path, command: str, args: list[str], shards: int, partitions: int) -> Path:
    """The plan of one command line, run from this directory: the same path every time."""
    key = json.dumps([os.getcwd(), command, args, shards, partitions]).encode()
    return state / f"{command}-{hashlib.sha256(key).hexdigest()[:16]}.plan.json"


def without_work(plan: dict) -> dict:
    return {k: v for k, v in plan.items() if k != "work"}


def make_plan(
    binary: str, path: Path, command: str, args: list[str], shards: int, partitions: int
) -> dict:
    """Plans the run; keeps the plan there (and what its tasks committed) when it is the same
    plan, so a run interrupted earlier resumes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(str(path) + ".d")

    def plan(to: Path) -> None:
        step = [binary, "step", "plan", "-o", str(to), "--shards", str(shards)]
        step += ["--partitions", str(partitions), command, *args]
        done = subprocess.run(step, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(done.returncode)

    if not path.exists():
        # Nothing to resume (results without their plan are not trusted): planned once,
        # under the final name, since the plan names its work directory.
        shutil.rmtree(work, ignore_errors=True)
        plan(path)
        return json.loads(path.read_text())
    fresh = path.with_name(path.name + ".new")
    plan(fresh)
    new = json.loads(fresh.read_text())
    fresh.unlink()
    shutil.rmtree(Path(str(fresh) + ".d"), ignore_errors=True)
    if without_work(json.loads(path.read_text())) != without_work(new):
        # Another plan (the inputs or the tool changed): its results are not this one's.
        shutil.rmtree(work, ignore_errors=True)
        plan(path)
    return json.loads(path.read_text())


@ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=True)
def run_task(binary: str, plan: str, stage: str, task: int) -> str:
    """One task of the plan, on whichever node Ray chose; returns that node's ID, raises (and
    is retried) on failure."""
    done = subprocess.run(
        [binary, "step", "task", plan, stage, str(task)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or f"exit status {done.returncode}")
    return ray.get_runtime_context().get_node_id()


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def run_stages(binary: str, path: Path, plan: dict, quiet: bool) -> list[Failure]:
    """Every stage's tasks, in order; a stage starts when the one before has finished."""
    failures: list[Failure] = []
    inputs = plan["inputs"]
    live = not quiet and sys.stderr.isatty()
    for stage in plan["stages"]:
        name, tasks = stage["name"], stage["tasks"]
        pending = {run_task.remote(binary, str(path), name, n): n for n in range(len(tasks))}
        done = failed = 0
        done_bytes = 0
        nodes: set[str] = set()
        # A map task reads a range of the inputs; a reduce task (an empty range) the packets
        # the map tasks sent its partition, from every input.
        total_bytes = sum(i["size"] for lo, hi in tasks for i in inputs[lo:hi])
        started = time.monotonic()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                n = pending.pop(ref)
                lo, hi = tasks[n]
                try:
                    nodes.add(ray.get(ref))
                    done += 1
                    done_bytes += sum(i["size"] for i in inputs[lo:hi])
                except Exception as e:  # a task's failure after its retries, reported below
                    failed += 1
                    names = [i["path"] for i in inputs[lo:hi]]
                    failures.append(Failure(name, n, names, last_line(e)))
            if live:
                sys.stderr.write(
                    f"\rtracekit-dist: {name}: {done}/{len(tasks)} tasks done, {failed} failed"
                    + (f", {human(done_bytes)} of {human(total_bytes)}" if total_bytes else "")
                )
        if live:
            sys.stderr.write("\n")
        if not quiet:
            read = f"{human(done_bytes)} " if total_bytes else ""
            sys.stderr.write(
                f"tracekit-dist: {name}: {done} task(s) done on {len(nodes)} node(s), "
                f"{failed} failed, {read}in {time.monotonic() - started:.1f} s\n"
            )
        if failed:
            break
    return failures


def last_line(e: Exception) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    binary = str(Path(a.tracekit).resolve()) if os.sep in a.tracekit else a.tracekit
    binary = shutil.which(binary) or binary
    started = time.monotonic()
    # Without --address, a Ray instance of its own here ("local"), never one found running.
    ray.init(address=a.address or "local", logging_level="ERROR", log_to_driver=False)
    joined = time.monotonic()
    shards = a.shards or SHARDS_PER_CPU * max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Partitions default to as many as shards (the plan decides). Fewer would map the set
    # fewer times, since each reduce task maps every input: under `xargs -P 3` the split of the
    # 4 GB bench set reduced in 8.7 s with 3 partitions against 12.0 s with 12. Through Ray it
    # did not pay (four runs each: 8.1-13.9 s with 3, 7.6-8.9 s with 12): three tasks finish
    # when the slowest does (in one run Ray gave one node two of them, one after the other),
    # while twelve balance as they finish.
    path = plan_path(a.state.resolve(), a.command, a.args, shards, a.partitions)
    try:
        plan = make_plan(binary, path, a.command, a.args, shards, a.partitions)
    except SystemExit:
        ray.shutdown()
        raise
    planned = time.monotonic()
    if not a.quiet:
        sys.stderr.write(
            f"tracekit-dist: Ray joined in {joined - started:.1f} s; plan {planned - joined:.1f} s "
            f"({len(plan['inputs'])} inputs, {human(sum(i['size'] for i in plan['inputs']))}, "
            f"{shards} shards)\n"
        )
    try:
        failures = run_stages(binary, path, plan, a.quiet)
    finally:
        ray.shutdown()
    if failures:
        sys.stderr.write(
            f"tracekit-dist: {len(failures)} task(s) failed after {RETRIES} retries:\n"
        )
        for f in failures:
            names = ", ".join(f.inputs[:3]) + (", ..." if len(f.inputs) > 3 else "")
            # A task of a later stage reads what the tasks before it committed, not inputs.
            reads = f" ({names})" if names else ""
            sys.stderr.write(f"  {f.stage} {f.task}{reads}: {f.why}\n")
        sys.stderr.write(f"tracekit-dist: run it again to retry them (the plan is {path})\n")
        return 2
    sys.stdout.flush()
    finishing = time.monotonic()
    done = subprocess.run([binary, "step", "finish", str(path)], stderr=subprocess.PIPE)
    work = Path(str(path) + ".d")
    if done.returncode == NOT_EXACT:
        # The partitions cannot give the single run's answer for this set (the finish says
        # why): the command itself, on this node, gives it.
        why = last_line(RuntimeError(done.stderr.decode(errors="replace")))
        sys.stderr.write(f"tracekit-dist: {why.removeprefix('tracekit: error: ')}\n")
        sys.stderr.write(f"tracekit-dist: running tracekit {a.command} on this node instead\n")
        sys.stderr.flush()
        code = subprocess.run([binary, a.command, *a.args]).returncode
        shutil.rmtree(work, ignore_errors=True)
        path.unlink(missing_ok=True)
        return code
    sys.stderr.buffer.write(done.stderr)
    sys.stderr.flush()
    if not a.quiet:
        sys.stderr.write(f"tracekit-dist: finish {time.monotonic() - finishing:.1f} s\n")
    if (work / "finished").exists():
        # The finish moved the results into place (split): nothing is left to resume.
        shutil.rmtree(work, ignore_errors=True)
        path.unlink(missing_ok=True)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
