"""What authentication and per-key limits cost on the API's path to a workflow.

Starts a headless Temporal dev server and PostgreSQL, then measures, sequentially and without a worker (the
workflows are only started): `start_request` called directly (the baseline), `POST /v1/requests` through the real
app in-process with a key that has an rpm and a daily budget (bearer lookup + allowlist + rate + budget + owner
claim + start), and the key lookup alone. Prints one JSON object as the last line.

    python -m bench.api_auth [--n 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import httpx

from activities.db import make_engine
from activities.keys_store import KeyStore
from domain.principals import AccessRole
from domain.requests import UserRequest
from hybrid_llm.api import create_app
from hybrid_llm.request_client import start_request
from hybrid_llm.temporal import connect
from bench.stack import bench_stack


def p50(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


async def main(n: int) -> dict:
    async with bench_stack("api-auth") as stack:
        settings = stack.settings
        client = await connect(settings)
        engine = make_engine(settings.effective_database_url, pool_size=4)
        store = KeyStore(engine)
        _, key = store.create("bench", (AccessRole.USER,), rpm=1_000_000, daily_tokens=10**12)

        direct = []
        for _ in range(n):
            t0 = time.perf_counter()
            await start_request(client, settings, UserRequest(request_id=uuid.uuid4().hex, prompt="hi"))
            direct.append((time.perf_counter() - t0) * 1000)

        app = create_app(settings, client=client)
        via_api = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            for _ in range(n):
                t0 = time.perf_counter()
                r = await http.post("/v1/requests", json={"prompt": "hi"})
                via_api.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 202, r.text

        lookups = []
        for _ in range(n):
            t0 = time.perf_counter()
            store.lookup(key)
            lookups.append((time.perf_counter() - t0) * 1000)
        engine.dispose()
        d, a = p50(direct), p50(via_api)
        return {"n": n, "start_direct_ms_p50": d, "api_start_ms_p50": a, "key_lookup_ms_p50": p50(lookups),
                "api_over_direct_ratio": round(a / d, 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60)
    result = asyncio.run(main(parser.parse_args().n))
    print(json.dumps(result))
