"""Versioned uploads, bad input, the CLI (subprocesses) and the API on real Temporal, PostgreSQL and MiniLM;
migration 0004 down and up."""

from __future__ import annotations

import io
import json
import uuid

import httpx
import pytest
import sqlalchemy as sa

from activities.uploads import UnknownVersion, UploadRefused
from domain.rag import BadUpload
from hybrid_llm import rag_client
from hybrid_llm.stack import migrate
from tests.processes import acli, cli


@pytest.fixture
def uploads(settings, engine):
    (settings.root / "uploads").mkdir(parents=True, exist_ok=True)
    return rag_client.build_uploads(settings, engine=engine)


@pytest.fixture
def name() -> str:
    return f"u{uuid.uuid4().hex[:8]}/doc.md"


def test_every_version_is_kept_content_addressed_and_restorable(uploads, settings, name):
    first = uploads.put(name, b"# One\n\nfirst text\n")
    same = uploads.put(f"uploads/{name}", b"# One\n\nfirst text\n")
    second = uploads.put(name, b"# Two\n\nsecond text\n")
    assert (first.version, first.created, same.created, second.version) == (1, True, False, 2)
    versions = settings.root / "uploads" / ".versions"
    assert (versions / first.sha256).read_bytes() == b"# One\n\nfirst text\n"
    assert (versions / second.sha256).read_bytes() == b"# Two\n\nsecond text\n"
    restored = uploads.restore(name, 1)
    assert (restored.version, restored.sha256) == (3, first.sha256)
    assert (settings.root / "uploads" / name).read_bytes() == b"# One\n\nfirst text\n"
    history = uploads.history(name)
    assert [(v.version, v.source) for v in history.versions] == [(1, "upload"), (2, "upload"), (3, "restore:v1")]
    assert not [p for p in (settings.root / "uploads").rglob(".tmp-*")]
    with pytest.raises(UnknownVersion):
        uploads.restore(name, 9)


@pytest.mark.parametrize("filename, data, code", [
    ("empty.txt", b"", "empty"),
    ("blank.md", b"  \n\t\n", "empty"),
    ("image.png", b"\x89PNG\r\n\x1a\n....", "unsupported"),
    ("program.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00\x00", "binary"),
    ("latin1.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"), "undecodable"),
    ("fake.pdf", b"this is not a pdf", "corrupt"),
])
def test_bad_input_is_refused_and_nothing_is_stored(uploads, settings, filename, data, code):
    path = f"bad{uuid.uuid4().hex[:6]}/{filename}"
    with pytest.raises(BadUpload) as err:
        uploads.put(path, data)
    assert err.value.code == code
    assert not (settings.root / "uploads" / path).exists()
    with pytest.raises(UnknownVersion):
        uploads.history(path)


def test_size_limit_and_unsafe_names(uploads):
    uploads.max_bytes = 100
    with pytest.raises(BadUpload) as err:
        uploads.put("big.txt", b"x" * 101)
    assert err.value.code == "too_large"
    for bad in ("../etc/passwd", "uploads/.versions/abc", "uploads", "/abs.txt", ".hidden.md", "a/../../x"):
        with pytest.raises(UploadRefused):
            uploads.put(bad, b"text")


def make_pdf(text: str) -> bytes:
    """A one-page PDF with a text layer (built by hand: pypdf does not write text)."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


async def test_cli_upload_wait_search_history_restore(client, settings, run_worker, scripted_pool, embedder,
                                                      tmp_path):
    folder = f"c{uuid.uuid4().hex[:8]}"
    doc = tmp_path / "volcano.md"
    doc.write_text("# Geology\n\nMagma rises through the crust and erupts as lava from the crater.\n")
    pdf = tmp_path / "orbit.pdf"
    pdf.write_bytes(make_pdf("The satellite circles the planet every ninety minutes in low orbit."))
    async with run_worker(scripted_pool(), embedder=embedder):
        up = await acli(settings, "upload", str(doc), "--as", f"{folder}/volcano.md", "--wait", "--json")
        assert up.returncode == 0, up.stderr
        out = json.loads(up.stdout)
        assert (out["path"], out["version"], out["result"]["action"]) == (f"uploads/{folder}/volcano.md", 1,
                                                                          "indexed")
        up_pdf = await acli(settings, "upload", str(pdf), "--as", f"{folder}/orbit.pdf", "--wait")
        assert up_pdf.returncode == 0 and "indexed" in up_pdf.stdout, up_pdf.stderr
        again = await acli(settings, "upload", str(doc), "--as", f"{folder}/volcano.md", "--wait")
        assert again.returncode == 0 and "unchanged" in again.stdout, again.stderr

        doc.write_text("# Geology\n\nGlaciers carve valleys slowly over thousands of years.\n")
        changed = await acli(settings, "upload", str(doc), "--as", f"{folder}/volcano.md", "--wait", "--json")
        assert json.loads(changed.stdout)["version"] == 2

        found = await acli(settings, "search", "an eruption of molten rock", "-k", "20", "--json")
        assert found.returncode == 0, found.stderr
        results = json.loads(found.stdout)["results"]
        assert {"text", "score", "source", "version", "position", "chunk_id"} <= set(results[0])
        assert {r["version"] for r in results if r["source"] == f"uploads/{folder}/volcano.md"} == {2}  # v1 gone

        hist = await acli(settings, "files", "history", f"uploads/{folder}/volcano.md", "--json")
        assert [v["version"] for v in json.loads(hist.stdout)["versions"]] == [1, 2]
        restored = await acli(settings, "files", "restore", f"{folder}/volcano.md", "--version", "1", "--wait")
        assert restored.returncode == 0 and "restored as v3" in restored.stdout, restored.stderr
        found = await acli(settings, "search", "an eruption of molten rock", "-k", "20", "--json")
        mine = [r for r in json.loads(found.stdout)["results"] if r["source"] == f"uploads/{folder}/volcano.md"]
        assert mine and mine[0]["version"] == 3
        orbit = await acli(settings, "search", "spacecraft going around the earth", "-k", "20", "--json")
        pages = [r for r in json.loads(orbit.stdout)["results"] if r["source"] == f"uploads/{folder}/orbit.pdf"]
        assert pages and pages[0]["page"] == 1 and "ninety minutes" in pages[0]["text"]


def test_cli_bad_input_exits_2_with_one_line(settings, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\x00\x01\x02" * 10)
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("na\u00efve".encode("latin-1"))
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 200)
    cases = [(empty, "is empty", {}), (binary, "looks binary", {}), (image, "unsupported file type", {}),
             (latin, "not valid UTF-8", {}), (big, "over the limit", {"HYBRID_MAX_UPLOAD_BYTES": "100"}),
             (tmp_path / "missing.txt", "cannot read", {})]
    for path, fragment, env in cases:
        proc = cli(settings, "upload", str(path), **env)
        assert proc.returncode == 2, (path, proc.stdout, proc.stderr)
        assert fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2
    assert not (settings.root / "uploads" / "empty.txt").exists()
    assert cli(settings, "search", "x", "-k", "0").returncode == 2
    assert cli(settings, "files", "history", "uploads/never.md").returncode == 2


async def test_api_upload_and_search(client, settings, run_worker, scripted_pool, embedder, engine, api_keys):
    from hybrid_llm.api.app import create_app
    from tests.conftest import bearer

    app = create_app(settings, client=client)
    folder = f"a{uuid.uuid4().hex[:8]}"
    transport = httpx.ASGITransport(app=app)
    async with run_worker(scripted_pool(), embedder=embedder), \
            httpx.AsyncClient(transport=transport, base_url="http://api",
                              headers=bearer(api_keys["user"][1])) as http:
        r = await http.post("/v1/uploads", json={"name": f"{folder}/bees.md", "wait": True,
                                                 "content": "# Bees\n\nHoneybees collect nectar and pollen.\n"})
        assert r.status_code == 202, r.text
        assert r.json()["result"]["action"] == "indexed"
        r = await http.post("/v1/uploads", files={"file": ("ants.txt", b"Ants build colonies underground.")},
                            data={"name": f"{folder}/ants.txt", "wait": "true"})
        assert r.status_code == 202 and r.json()["version"] == 1, r.text
        r = await http.get("/v1/search", params={"q": "insects that make honey", "k": 20})
        assert r.status_code == 200
        sources = [h["source"] for h in r.json()["results"]]
        assert f"uploads/{folder}/bees.md" in sources
        assert (await http.get("/v1/search", params={"q": "", "k": 5})).status_code == 422
        assert (await http.get("/v1/search", params={"q": "x", "k": 0})).status_code == 422
        bad = await http.post("/v1/uploads", json={"name": "x.bin", "content": "abc"})
        assert bad.status_code == 422 and "unsupported" in bad.json()["message"]
        empty = await http.post("/v1/uploads", files={"file": ("e.txt", b"")})
        assert empty.status_code == 422 and "empty" in empty.json()["message"]
        settings.max_upload_bytes = 10
        big = await http.post("/v1/uploads", json={"name": "big.txt", "content": "x" * 11})
        assert big.status_code == 413
        hist = await http.get("/v1/uploads/history", params={"path": f"{folder}/bees.md"})
        assert hist.status_code == 200 and hist.json()["versions"][0]["current"]


def test_migration_0004_down_and_up(scratch_database_url):
    url = scratch_database_url
    migrate.upgrade(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    tables = {"documents", "document_versions", "chunks", "global_context", "model_context"}
    try:
        assert tables <= set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            index = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw'"))
            definition = index.scalar_one()
            assert "hnsw" in definition and "halfvec_cosine_ops" in definition  # 0011_halfvec
        migrate.downgrade(url, "0003_blobs")
        assert not tables & set(sa.inspect(engine).get_table_names())
        migrate.upgrade(url)
        assert migrate.current(url) == migrate.head()
    finally:
        engine.dispose()


async def test_uploads_are_refused_while_locked(client, settings, run_worker, scripted_pool, engine, lockdown_secret):
    from temporalio.exceptions import ApplicationError

    from hybrid_llm import lockdown_client, rag_client

    (settings.root / "uploads").mkdir(parents=True, exist_ok=True)
    uploads = rag_client.build_uploads(settings, engine=engine)
    async with run_worker(scripted_pool()):
        await lockdown_client.engage(client, settings, "read-only please", actor="pytest")
        try:
            with pytest.raises(ApplicationError) as info:
                await rag_client.upload(client, settings, uploads, "locked/notes.md", b"# Notes\n\nhello\n")
        finally:
            await lockdown_client.release(client, settings, lockdown_secret, actor="pytest")
    assert info.value.type == "LockedDown"
    assert not (settings.root / "uploads" / "locked" / "notes.md").exists()
