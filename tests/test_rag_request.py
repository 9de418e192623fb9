"""`ask --rag`: the model answers from the uploads' best passages and the result cites them."""

from __future__ import annotations

import json

from hybrid_llm.temporal import PayloadReader, keyring_of
from tests.conftest import scripted
from tests.helpers import ask_and_wait, model_calls
from tests.test_rag import folder, upload_and_wait, uploads  # noqa: F401 - fixtures and helpers

LIGHTHOUSE = """# Harbour log

The lighthouse keeper winds the clockwork lens every four hours so the beam keeps turning through the night.
"""


async def test_ask_with_rag_gives_the_model_cited_passages(client, settings, run_worker, scripted_pool, embedder,
                                                           uploads, folder):  # noqa: F811
    async with run_worker(scripted_pool(scripted("echo")), embedder=embedder):
        await upload_and_wait(client, settings, uploads, f"{folder}/harbour.md", LIGHTHOUSE)
        handle, result = await ask_and_wait(client, settings, "How often is the beacon's mechanism rewound?",
                                            rag=True, rag_k=3)
    top = result.citations[0]
    assert top["source"] == f"uploads/{folder}/harbour.md" and top["n"] == 1 and top["version"] == 1
    assert top["chunk_sha256"] and top["cite"].startswith(f"uploads/{folder}/harbour.md v1")
    memo = await (await handle.describe()).memo_value("rag")
    assert memo["chunk_ids"][: len(result.citations)] == [c["chunk_id"] for c in result.citations]
    # Exactly what the model saw is in history: the passages in the LLM call's messages.
    history = await handle.fetch_history()
    calls = [call["input"] for call in model_calls(history, PayloadReader(keyring_of(handle._client)))]
    assert calls and "clockwork lens" in json.dumps(calls[0]["messages"])
    assert "[1] uploads/" in calls[0]["messages"][0]["content"]


async def test_ask_with_rag_and_the_real_local_model(client, settings, run_worker, local_pool, embedder, uploads,
                                                     folder):  # noqa: F811
    async with run_worker(local_pool, embedder=embedder):
        await upload_and_wait(client, settings, uploads, f"{folder}/harbour.md", LIGHTHOUSE)
        _, result = await ask_and_wait(client, settings, "How often does the keeper wind the lens?", rag=True,
                                       rag_k=2, max_tokens=32)
    assert result.model == "smollm2-135m" and result.answer.strip()
    assert result.citations and result.citations[0]["source"].endswith("harbour.md")
