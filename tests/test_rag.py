"""RAG end to end on real Temporal, real PostgreSQL + pgvector and the real MiniLM model: ingestion, search by
meaning, re-index on change, removal on delete, failed ingestion leaves the previous state, the watcher, context."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import sqlalchemy as sa
from temporalio.client import WorkflowFailureError

from domain.chunking import chunk
from domain.rag import ContextGet, ContextPut, IngestInput, RetrieveRequest, SearchQuery, ingest_workflow_id
from hybrid_llm import rag_client
from workflows.ingest import IngestWorkflow

PASTA = """# Cooking notes

## Pasta

Bring a large pot of salted water to a rolling boil, add the spaghetti and stir so it does not stick.
Drain it when it is al dente, keeping a cup of the starchy water for the sauce.
"""
CATS = """# Pets

Our two cats sleep most of the afternoon on the windowsill and purr when someone strokes them.
"""
ROCKETS = """# Spaceflight

The booster separates two minutes after launch, then the upper stage engine ignites to reach orbit.
"""


@pytest.fixture
def uploads(settings, engine):
    (settings.root / "uploads").mkdir(parents=True, exist_ok=True)
    return rag_client.build_uploads(settings, engine=engine)


@pytest.fixture
def folder() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def upload_and_wait(client, settings, uploads, name, text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    receipt, handle = await rag_client.upload(client, settings, uploads, name, data)
    return receipt, await rag_client.wait(handle)


async def search(client, settings, query: str, k: int = 5):
    return (await rag_client.search(client, settings, SearchQuery(query=query, k=k))).results


def chunk_rows(engine, path: str) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT c.version_id, c.position FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.path = :p ORDER BY c.position"), {"p": path}).all()


async def test_search_finds_a_passage_by_meaning_not_by_shared_words(client, settings, run_worker, scripted_pool,
                                                                      embedder, uploads, folder):
    async with run_worker(scripted_pool(), embedder=embedder):
        for name, text in (("pasta.md", PASTA), ("cats.md", CATS), ("rockets.md", ROCKETS)):
            receipt, result = await upload_and_wait(client, settings, uploads, f"{folder}/{name}", text)
            assert result.action == "indexed" and result.chunks >= 1 and receipt.version == 1
        # No word of the query appears in the passage it should find.
        query = "How long should noodles simmer?"
        assert not set(query.lower().strip("?").split()) & set(PASTA.lower().replace(".", " ").split())
        hits = await search(client, settings, query, k=3)
    best = hits[0]
    assert best.source == f"uploads/{folder}/pasta.md" and "spaghetti" in best.text
    assert best.version == 1 and best.position == 0 and best.section == "Cooking notes > Pasta"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert best.start_line >= 1 and best.chunk_sha256 and best.version_sha256 == receipt_sha(uploads, best.source)


def receipt_sha(uploads, path: str) -> str:
    return [v for v in uploads.history(path).versions if v.current][0].sha256


async def test_reupload_unchanged_is_a_noop_change_replaces_delete_removes(client, settings, run_worker,
                                                                          scripted_pool, embedder, uploads, folder,
                                                                          engine):
    path = f"uploads/{folder}/notes.md"
    async with run_worker(scripted_pool(), embedder=embedder):
        first, r1 = await upload_and_wait(client, settings, uploads, path, CATS)
        again, r2 = await upload_and_wait(client, settings, uploads, path, CATS)
        assert (again.created, again.version, r2.action) == (False, 1, "unchanged")
        before = chunk_rows(engine, path)

        changed, r3 = await upload_and_wait(client, settings, uploads, path, ROCKETS)
        assert (changed.version, r3.action, r3.removed) == (2, "indexed", len(before))
        after = chunk_rows(engine, path)
        assert {v for v, _ in after} == {r3_version_id(engine, path, 2)}  # only the new version's chunks
        hits = await search(client, settings, "what happens after a rocket launch", k=5)
        mine = [h for h in hits if h.source == path]
        assert mine and mine[0].version == 2 and "booster" in mine[0].text
        assert not any("cats" in h.text for h in hits if h.source == path)

        (settings.root / path).unlink()
        handles = await rag_client.ingest_changes(client, settings, uploads, [path])
        removed = await rag_client.wait(handles[0])
    assert removed.action == "removed" and removed.removed == len(after)
    assert chunk_rows(engine, path) == []
    history = uploads.history(path)
    assert [(v.version, v.source, v.status) for v in history.versions] == [
        (1, "upload", "superseded"), (2, "upload", "superseded"), (3, "deleted", "deleted")]


def r3_version_id(engine, path: str, version: int) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT v.id FROM document_versions v JOIN documents d ON d.id = v.document_id "
                                    "WHERE d.path = :p AND v.version = :v"), {"p": path, "v": version}).scalar_one()


async def test_a_failed_ingestion_leaves_the_previous_version_searchable(client, settings, run_worker,
                                                                        scripted_pool, embedder, uploads, folder,
                                                                        engine):
    path = f"uploads/{folder}/pets.md"
    async with run_worker(scripted_pool(), embedder=embedder):
        _, ok = await upload_and_wait(client, settings, uploads, path, CATS)
        good = chunk_rows(engine, path)
        # Version 2 is recorded, but its stored content is damaged before ingestion reads it.
        receipt = await asyncio.to_thread(uploads.put, path, (CATS + "\nA second paragraph about kittens.\n").encode())
        blob = settings.root / "uploads" / ".versions" / receipt.sha256
        blob.write_bytes(b"tampered")
        handle = await rag_client.start_ingest(client, settings, receipt)
        with pytest.raises(rag_client.IngestFailed) as failed:
            await rag_client.wait(handle)
        hits = await search(client, settings, "sleepy felines on a window ledge", k=20)
    assert failed.value.kind == "BadUpload" and "corrupt" in str(failed.value)
    assert chunk_rows(engine, path) == good  # nothing half-indexed, nothing lost
    assert [h.version for h in hits if h.source == path] == [1]  # other tests' documents share the database
    statuses = {v.version: v.status for v in uploads.history(path).versions}
    assert statuses == {1: "indexed", 2: "failed"}


async def test_ingestion_reports_progress_and_history_carries_no_text(client, settings, run_worker, scripted_pool,
                                                                      embedder, uploads, folder):
    text = "\n\n".join(f"Paragraph {i}: " + " ".join(f"word{i}_{j}" for j in range(60)) for i in range(40))
    seen = []
    async with run_worker(scripted_pool(), embedder=embedder):
        receipt = await asyncio.to_thread(uploads.put, f"{folder}/long.txt", text.encode())
        handle = await client.start_workflow(
            IngestWorkflow.run, IngestInput(path=receipt.path, version=receipt.version, sha256=receipt.sha256,
                                            batch_size=4), id=ingest_workflow_id(receipt.path, receipt.version),
            task_queue=settings.task_queue)
        result = await rag_client.wait(handle, seen.append, every_s=0.05)
        history = (await handle.fetch_history()).to_json()
    assert result.action == "indexed" and result.chunks > 8
    assert seen and seen[-1].total == result.chunks
    assert any(p.stage == "embedding" and 0 < p.done < p.total for p in seen)
    assert "word3_17" not in history and "Paragraph 5" not in history  # ids and hashes only


async def test_the_watcher_indexes_new_changed_and_deleted_files(client, settings, run_worker, scripted_pool,
                                                                 embedder, uploads, folder, engine):
    settings.watch_debounce_ms = 100
    stop = asyncio.Event()
    path = f"uploads/{folder}/watched.md"
    target = settings.root / path
    target.parent.mkdir(parents=True, exist_ok=True)

    async def settled(deleted: bool = False) -> int:
        """Wait until the latest version is the indexed one (or, for a deletion, nothing is left)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _has(uploads, path):
                versions = uploads.history(path).versions
                if deleted and versions[-1].source == "deleted" and not chunk_rows(engine, path):
                    return versions[-1].version
                if not deleted and versions[-1].current:
                    return versions[-1].version
            await asyncio.sleep(0.1)
        raise AssertionError(f"{path} did not settle: {uploads.history(path) if _has(uploads, path) else None}")

    async with run_worker(scripted_pool(), embedder=embedder):
        task = rag_client.watch_uploads(client, settings, stop, uploads)
        try:
            await asyncio.sleep(0.3)
            for i in range(5):  # a burst of writes: debounced into fewer versions, the last one wins
                target.write_text(PASTA + f"\nNote {i}.\n")
                await asyncio.sleep(0.01)
            first = await settled()
            assert first < 5 and "Note 4." in target.read_text()
            target.write_text(ROCKETS)
            await asyncio.sleep(0.3)
            second = await settled()
            assert second > first
            hits = await search(client, settings, "stage separation during a launch", k=5)
            assert any(h.source == path and h.version == second for h in hits)
            target.write_bytes(b"\x00\x01binary")  # bad content: logged and skipped, previous version stays
            await asyncio.sleep(0.6)
            assert uploads.history(path).versions[-1].version == second
            target.unlink()
            await settled(deleted=True)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


def _has(uploads, path: str) -> bool:
    try:
        uploads.history(path)
        return True
    except LookupError:
        return False


async def test_retrieve_gives_numbered_citations_and_context_round_trips(client, settings, run_worker,
                                                                         scripted_pool, embedder, uploads, folder,
                                                                         engine):
    from activities.lockdown_gate import LockdownGate
    from activities.lockdown_store import LockdownStore
    from activities.rag.context import ContextActivities
    from activities.rag.search import SearchActivities

    async with run_worker(scripted_pool(), embedder=embedder):
        await upload_and_wait(client, settings, uploads, f"{folder}/pasta.md", PASTA)
    ctx = SearchActivities(engine, embedder).retrieve(RetrieveRequest(query="cooking spaghetti", k=20))
    number = [c.source for c in ctx.chunks].index(f"uploads/{folder}/pasta.md") + 1  # the database is shared
    assert ctx.chunks[0].section == "Cooking notes > Pasta"
    assert ctx.context.startswith("Sources") and f"[{number}] uploads/{folder}/pasta.md v1, lines" in ctx.context
    assert ctx.chunk_ids == [c.chunk_id for c in ctx.chunks] and len(ctx.chunk_sha256s[0]) == 64

    store = ContextActivities(engine, LockdownGate(LockdownStore(engine, settings.task_queue)))
    key = f"task-{folder}"
    store.put(ContextPut(scope="model", model_id="coder", key=key, value="reviewing login.py"))
    store.put(ContextPut(scope="model", model_id="coder", key=key, value="fixing login.py", updated_by="t"))
    store.put(ContextPut(key=f"alerts-{folder}", value="none"))
    got = store.get(ContextGet(scope="model", model_id="coder", key=key)).entries
    assert [(e.value, e.updated_by) for e in got] == [("fixing login.py", "t")]
    assert store.get(ContextGet(key=f"alerts-{folder}")).entries[0].value == "none"
    with pytest.raises(ValueError):
        ContextPut(scope="model", key="x", value="no model id")


def test_chunkers_follow_structure() -> None:
    md = chunk("markdown", "# A\n\nintro\n\n## B\n\n```\n# not a heading\n```\n\ntext b\n")
    assert [c.section for c in md] == ["A", "A > B"] and "# not a heading" in md[1].text
    py = chunk("python", "import os\n\n\ndef f():\n    return 1\n\n\n@dec\nclass C:\n    x = 1\n")
    assert [c.section for c in py] == [None, "def f", "class C"] and py[2].text.startswith("@dec")
    assert chunk("python", "def broken(:\n    pass\n")[0].text.startswith("def broken")
    code = chunk("code", "function a() {\n  x();\n\n  y();\n}\n" + "\n".join(f"// {i}" * 30 for i in range(60)))
    assert code[0].text.startswith("function a() {\n  x();\n\n  y();\n}")
    long = chunk("text", "Sentence one. " * 400)
    assert all(len(c.text) <= 1200 for c in long) and len(long) >= 4
    pdf = chunk("pdf", pages=["first page", "", "third page"])
    assert [(c.page, c.position) for c in pdf] == [(1, 0), (3, 1)]
    assert chunk("markdown", PASTA) == chunk("markdown", PASTA)  # deterministic
