"""Benchmark the sandboxes, with baselines measured in the same run.

Prints progress to stderr and one JSON object as the last line of stdout:
  namespace_overhead_ms_p50  `echo` in the namespace sandbox (bwrap, cgroups, uid 65534) minus a bare subprocess
  microvm_start_s_p50        `echo` in the microVM (boot, run, results back), whole run; null when unavailable
  workflow_overhead_ms_p50   the whole SandboxWorkflow lifecycle (scan, create, configure, execute, auto-approve,
                             destroy) minus the namespace run itself
  egress_proxy_overhead_ms_p50  a connection + one HTTP exchange through the egress proxy minus the same made
                             directly (bench/egress.py, which bench/security.py also calls)

Usage: python bench/sandbox.py [--runs 30] [--vm-runs 3] [--workflows 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.llm_pool import LLMPool  # noqa: E402
from activities.sandbox._microvm import MicroVMAssets, run_microvm, unavailable_reason  # noqa: E402
from activities.sandbox._namespace import run_namespace  # noqa: E402
from activities.sandbox._workspace import Workspace  # noqa: E402
from domain.registry import Registry  # noqa: E402
from domain.sandbox import Limits, ReviewDecision, SandboxSpec  # noqa: E402
from hybrid_llm import sandbox_client  # noqa: E402
from hybrid_llm.sandbox_worker import microvm_dir  # noqa: E402
from hybrid_llm.settings import Settings  # noqa: E402
from hybrid_llm.temporal import connect, ensure_search_attributes  # noqa: E402
from worker import build_worker  # noqa: E402
from bench.stack import bench_stack  # noqa: E402
from bench.egress import egress_overhead  # noqa: E402
from domain.principals import AccessRole, Principal  # noqa: E402

BASE = Path("/var/tmp/hybrid-llm-sandboxes") / f"bench-{os.getpid()}"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def namespace_overhead(runs: int) -> dict:
    bare, boxed = [], []
    for i in range(runs + 3):
        t = time.perf_counter()
        subprocess.run(["/bin/echo", "hi"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        b = time.perf_counter() - t
        ws = Workspace(BASE, f"ns-{i}")
        ws.create("bench", "namespace")
        t = time.perf_counter()
        r = run_namespace(f"bench-ns-{os.getpid()}-{i}", ws.work, ["/bin/echo", "hi"], Limits(), False)
        s = time.perf_counter() - t
        ws.destroy()
        assert r.exit_code == 0 and r.stdout == "hi\n", r
        if i >= 3:  # warm-up
            bare.append(b * 1000)
            boxed.append(s * 1000)
    over = [s - b for s, b in zip(boxed, bare)]
    return {"namespace_overhead_ms_p50": round(statistics.median(over), 2),
            "namespace_echo_ms_p50": round(statistics.median(boxed), 2),
            "bare_echo_ms_p50": round(statistics.median(bare), 2)}


def microvm_start(runs: int) -> dict:
    folder = microvm_dir(Settings())
    why = unavailable_reason(folder)
    if why is not None:
        say(f"microvm: skipped: {why}")
        return {"microvm_start_s_p50": None, "microvm_skipped": why}
    assets = MicroVMAssets.find(folder)
    assert assets is not None
    times = []
    for i in range(runs):
        ws = Workspace(BASE, f"vm-{i}")
        ws.create("bench", "microvm")
        t = time.perf_counter()
        r = run_microvm(ws.dir, ws.work, ["echo", "hi"], Limits(), assets)
        times.append(time.perf_counter() - t)
        ws.destroy()
        assert r.exit_code == 0 and r.stdout == "hi\n", r
    return {"microvm_start_s_p50": round(statistics.median(times), 3)}


async def workflow_overhead(n: int) -> dict:
    async with bench_stack("sandbox", sandbox_dir=BASE / "wf") as stack:
        settings = stack.settings
        settings.root.mkdir(parents=True, exist_ok=True)
        client = await connect(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)
        approve = ReviewDecision(approve=True, by="bench", principal=Principal(
            id="bench", name="bench", roles=(AccessRole.APPROVER,)))
        spec = SandboxSpec(command=("/bin/echo", "hi"))
        overheads, totals = [], []
        async with build_worker(client, settings, LLMPool(Registry(models=()))):
            for i in range(n + 3):
                t = time.perf_counter()
                out = await (await sandbox_client.start(client, settings, spec, approve)).result()
                total = (time.perf_counter() - t) * 1000
                assert out.status == "approved" and out.destroyed, out
                if i >= 3:
                    totals.append(total)
                    overheads.append(total - out.duration_ms)
    return {"workflow_overhead_ms_p50": round(statistics.median(overheads), 1),
            "workflow_total_ms_p50": round(statistics.median(totals), 1)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--vm-runs", type=int, default=3)
    parser.add_argument("--workflows", type=int, default=20)
    parser.add_argument("--egress-runs", type=int, default=200)
    args = parser.parse_args()
    figures: dict = {}
    try:
        say("namespace sandbox vs bare subprocess ...")
        figures |= namespace_overhead(args.runs)
        say("microVM boots ...")
        figures |= microvm_start(args.vm_runs)
        say("workflow lifecycle ...")
        figures |= await workflow_overhead(args.workflows)
        say("egress proxy vs direct ...")
        figures |= egress_overhead(args.egress_runs)
    finally:
        import shutil

        shutil.rmtree(BASE, ignore_errors=True)
    figures["targets"] = {"namespace_overhead_ms_p50": "<= 20"}
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
