"""Benchmark streaming through the OpenAI-compatible endpoint against a direct llama-cpp-python stream of the same
model and prompt, measured in the same run on the same machine.

The endpoint path is the whole platform as `hybrid-llm up` runs it (the API and the worker in their own processes):
HTTP API -> RequestWorkflow on a real Temporal server -> the LLM activity streaming into the workflow's answer
stream -> the API reading it -> server-sent events -> the real `openai` client. The direct path is
`Llama.create_chat_completion(stream=True)` in this process.

Prints progress to stderr and one JSON object as the last line of stdout:
  ttft_ms_p50_endpoint, ttft_ms_p50_direct   time to the first content token (p50)
  ttft_target_ms                             1.3 x direct + 50 ms (the goal for the endpoint)
  ttft_ok                                    endpoint p50 <= target
  tokens_per_s_endpoint, tokens_per_s_direct streamed completion tokens per second, first to last token (p50)
  tokens_per_s_ratio                         endpoint / direct (goal >= 0.9)

Every run repeats one prompt (the worker then keeps no guardrail verdicts, so the endpoint scans it as new each time);
--vary-prompt sends a different user message in each run (the same on both paths), with the worker's defaults.

Usage: python bench/streaming.py [--runs 15] [--max-tokens 96] [--vary-prompt]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402

from activities.db import make_engine  # noqa: E402
from activities.keys_store import KeyStore  # noqa: E402
from bench.stack import bench_stack  # noqa: E402
from domain.principals import AccessRole  # noqa: E402
from hybrid_llm.registry_file import load_registry  # noqa: E402
from hybrid_llm.stack.api_process import ApiProcess  # noqa: E402
from hybrid_llm.stack.procs import free_port  # noqa: E402
from hybrid_llm.stack.worker_process import WorkerProcess  # noqa: E402
from hybrid_llm.temporal import connect, ensure_search_attributes  # noqa: E402

MODEL = "smollm2-135m"
SYSTEM = {"role": "system", "content": "You are a helpful, concise assistant."}


def messages(run: int, vary: bool) -> list[dict]:
    """Both paths send the same messages in a run. By default every run repeats one prompt (llama.cpp then reuses
    the evaluated prompt on both paths, and the worker keeps no verdicts: see main). --vary-prompt: the user's
    message differs in each run (the system text stays, as chat clients send it), nothing is reused."""
    text = "Tell a short story about a lighthouse keeper and a storm."
    return [SYSTEM, {"role": "user", "content": f"{text[:-1]} ({run})." if vary else text}]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def direct_run(llama, max_tokens: int, msgs: list[dict]) -> tuple[float, float, int]:
    """(ttft_ms, tokens/s first->last, tokens) of one direct streamed completion."""
    t0 = time.perf_counter()
    first = last = None
    tokens = 0
    for chunk in llama.create_chat_completion(messages=msgs, max_tokens=max_tokens, temperature=0.0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
            tokens += 1  # llama-cpp-python yields one chunk per token
    return (first - t0) * 1000, (tokens - 1) / (last - first) if tokens > 1 else 0.0, tokens


async def endpoint_run(api: openai.AsyncOpenAI, max_tokens: int, msgs: list[dict]) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    first = last = None
    tokens = 0
    stream = await api.chat.completions.create(model=MODEL, messages=msgs, max_tokens=max_tokens,
                                               temperature=0.0, stream=True, stream_options={"include_usage": True})
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    # Tokens arrive in batches: the rate counts every token after the first over the first->last interval.
    return (first - t0) * 1000, (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0, tokens


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)  # p50s of 7 runs moved by ~10 ms between runs here
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--vary-prompt", action="store_true", help="a different user message in each run")
    args = parser.parse_args()
    vary = args.vary_prompt

    from llama_cpp import Llama

    spec = load_registry().get(MODEL)
    assert spec is not None and spec.path
    async with bench_stack("streaming", api_port=free_port()) as stack:
        settings = stack.settings
        if not vary:  # a repeated prompt would find the worker's verdict on it: scan it every time, as if new
            settings.scan_memory = 0
        client = await connect(settings)  # also creates the codec keyring the two processes share
        await ensure_search_attributes(client, settings.temporal_namespace)
        _, key = KeyStore(make_engine(settings.effective_database_url)).create("bench-streaming", (AccessRole.USER,))
        # The deployed shape (`hybrid-llm up`): the worker and the API in their own processes.
        worker, api_process = WorkerProcess(settings), ApiProcess(settings)
        threads = int(spec.options.get("n_threads", os.cpu_count() or 1))
        direct = Llama(model_path=spec.path, n_ctx=spec.context_size, seed=0, verbose=False,
                       n_threads=max(1, min(os.cpu_count() or 1, threads)))
        try:
            say("starting the worker and the API")
            await asyncio.to_thread(worker.start, 120.0)
            await asyncio.to_thread(api_process.start, 60.0)
            api = openai.AsyncOpenAI(base_url=f"{api_process.url}/v1", api_key=key, max_retries=0, timeout=120)
            say("warming up both paths")
            await endpoint_run(api, 8, messages(-1, vary))
            direct_run(direct, 8, messages(-1, vary))
            results: dict[str, list[tuple[float, float, int]]] = {"endpoint": [], "direct": []}
            for i in range(args.runs):  # alternate, so drift on a shared machine hits both alike
                msgs = messages(i, vary)
                results["direct"].append(await asyncio.to_thread(direct_run, direct, args.max_tokens, msgs))
                results["endpoint"].append(await endpoint_run(api, args.max_tokens, msgs))
                say(f"run {i + 1}/{args.runs}: direct ttft {results['direct'][-1][0]:.0f} ms "
                    f"{results['direct'][-1][1]:.0f} tok/s; endpoint ttft {results['endpoint'][-1][0]:.0f} ms "
                    f"{results['endpoint'][-1][1]:.0f} tok/s ({results['endpoint'][-1][2]} tokens)")
        finally:
            direct.close()
            api_process.stop()
            worker.stop()
    p50 = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in results.items()}
    target = 1.3 * p50["direct"][0] + 50
    print(json.dumps({
        "runs": args.runs, "max_tokens": args.max_tokens, "model": MODEL, "vary_prompt": vary,
        "ttft_ms_p50_endpoint": round(p50["endpoint"][0], 1), "ttft_ms_p50_direct": round(p50["direct"][0], 1),
        "ttft_target_ms": round(target, 1), "ttft_ok": p50["endpoint"][0] <= target,
        "tokens_per_s_endpoint": round(p50["endpoint"][1], 1), "tokens_per_s_direct": round(p50["direct"][1], 1),
        "tokens_per_s_ratio": round(p50["endpoint"][1] / p50["direct"][1], 3) if p50["direct"][1] else None,
    }))


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300: avoid the interpreter-exit crash of short client processes
