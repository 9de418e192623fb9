"""`hybrid-llm upload FILE [--wait]` and `hybrid-llm search QUERY -k N [--json]`; `files history|restore` too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hybrid_llm.cli.common import CLIError, console, err_console, remote, run, settings

EXIT_BAD_INPUT = 2


def _uploads(cfg):
    from hybrid_llm.rag_client import build_uploads

    return build_uploads(cfg)


def _input_errors():
    """The exceptions that mean bad input (exit 2), as a tuple for `except`."""
    from activities.uploads import UnknownVersion, UploadRefused
    from domain.rag import BadUpload

    return BadUpload, UploadRefused, UnknownVersion


async def _wait(handle, as_json: bool):
    """The ingestion's result; a progress bar on stderr meanwhile (not with --json)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from hybrid_llm import rag_client

    try:
        if as_json:
            return await rag_client.wait(handle)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err_console,
                      transient=True) as bar:
            task = bar.add_task("queued", total=None)

            def show(p) -> None:
                bar.update(task, description=p.stage, completed=p.done, total=p.total or None)

            return await rag_client.wait(handle, show)
    except rag_client.IngestFailed as e:
        code = EXIT_BAD_INPUT if e.kind in ("BadUpload", "UnknownVersion") else 1
        raise CLIError(f"{e.kind}: {e}", code=code) from None


def register(app: typer.Typer) -> None:
    @app.command()
    def upload(
        file: Annotated[Path, typer.Argument(help="The file to upload (text, Markdown, source code, PDF).")],
        name: Annotated[str | None, typer.Option("--as", help="Name under uploads/ (default: the file's name).")]
        = None,
        wait: Annotated[bool, typer.Option("--wait", help="Return once it is indexed (progress bar).")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Store a versioned upload in uploads/ and index it for search."""
        from activities.uploads import upload_path
        from hybrid_llm import rag_client
        from hybrid_llm.temporal import connect

        try:
            data = file.read_bytes()
        except OSError as e:
            raise CLIError(f"cannot read {file}: {e.strerror}", code=EXIT_BAD_INPUT) from None
        cfg = settings()

        async def go():
            uploads = _uploads(cfg)
            try:
                uploads.validate(upload_path(name or file.name), data)  # before anything is stored
                client = await connect(cfg)
                receipt, handle = await rag_client.upload(client, cfg, uploads, name or file.name, data)
            except _input_errors() as e:
                raise CLIError(str(e), code=EXIT_BAD_INPUT) from None
            finally:
                uploads.engine.dispose()
            result = await _wait(handle, as_json) if wait else None
            return receipt, handle, result

        if remote(cfg):  # through the API, as HYBRID_API_KEY
            from domain.rag import UploadReceipt
            from hybrid_llm.cli import remote as api

            out = api.upload(cfg, name or file.name, data, wait)
            receipt = UploadReceipt.model_validate({k: v for k, v in out.items()
                                                     if k in UploadReceipt.model_fields})
            if as_json:
                print(json.dumps(out))
                return
            line = f"{receipt.path} v{receipt.version} {'stored' if receipt.created else 'unchanged'} " \
                   f"({receipt.size:,} bytes, sha256 {receipt.sha256[:12]})"
            result = out.get("result")
            line += f"; {result['action']}: {result['chunks']} chunks" if result else \
                f"; indexing in {out['workflow_id']}"
            console.print(line, highlight=False)
            return
        receipt, handle, result = run(go())
        out = {**receipt.model_dump(mode="json"), "workflow_id": handle.id,
               "result": result.model_dump(mode="json") if result else None}
        if as_json:
            print(json.dumps(out))
            return
        what = "stored" if receipt.created else "unchanged"
        line = f"{receipt.path} v{receipt.version} {what} ({receipt.size:,} bytes, sha256 {receipt.sha256[:12]})"
        if result is not None:
            line += f"; {result.action}: {result.chunks} chunks"
        else:
            line += f"; indexing in {handle.id}"
        console.print(line, highlight=False)

    @app.command()
    def search(
        query: Annotated[str, typer.Argument(help="What to look for (by meaning).")],
        k: Annotated[int, typer.Option("-k", "--k", help="How many passages.")] = 5,
        mode: Annotated[str, typer.Option("--mode", help="hybrid (meaning and words), vector or text.")]
        = "hybrid",
        per_document: Annotated[int | None, typer.Option(
            "--per-document", help="At most this many passages of one document (default: the worker's "
                                   "HYBRID_RAG_PER_DOCUMENT).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """The k passages of the indexed uploads that best match QUERY by meaning and by words, best first, with
        citations; passages the guardrails flagged at ingestion show their finding."""
        from domain.rag import SearchQuery
        from hybrid_llm import rag_client
        from hybrid_llm.temporal import connect

        q = SearchQuery(query=query, k=k, mode=mode, per_document=per_document)  # a ValidationError is exit 2
        cfg = settings()

        async def go():
            return await rag_client.search(await connect(cfg), cfg, q)

        if remote(cfg):
            from hybrid_llm.cli import remote as api

            results = api.search(cfg, q.query, q.k)
        else:
            results = run(go())
        if as_json:
            print(json.dumps(results.model_dump(mode="json")))
            return
        if not results.results:
            console.print("no matches (is anything uploaded and indexed?)")
        for i, hit in enumerate(results.results, start=1):
            console.print(f"[bold][{i}] {hit.score:.3f}[/] {hit.citation()}", highlight=False)
            if hit.finding is not None:
                from rich.markup import escape

                evidence = "; ".join(f"{e.rule}: {e.detail}" for e in hit.finding.evidence[:3])
                rules = ", ".join(hit.finding.rules)
                console.print(f"[red]FLAGGED ({escape(hit.finding.risk)}: {escape(rules)})[/] {escape(evidence)}",
                              highlight=False)
            console.print(hit.text.strip()[:500], markup=False, highlight=False)
            console.print()


def register_files(files: typer.Typer) -> None:
    """`files history PATH` and `files restore PATH --version V` on the `files` sub-app."""

    @files.command()
    def history(
        path: Annotated[str, typer.Argument(help="A file under uploads/ (e.g. uploads/notes.md or notes.md).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Every version of an upload: content hash, size, source, indexing status."""
        cfg = settings()
        uploads = _uploads(cfg)
        try:
            hist = uploads.history(path)
        except _input_errors() as e:
            raise CLIError(str(e), code=EXIT_BAD_INPUT) from None
        finally:
            uploads.engine.dispose()
        if as_json:
            print(json.dumps(hist.model_dump(mode="json")))
            return
        from rich.table import Table

        table = Table(title=hist.path)
        for col in ("version", "sha256", "size", "source", "status", "chunks", "when", "current"):
            table.add_column(col)
        for v in hist.versions:
            table.add_row(str(v.version), (v.sha256 or "(deleted)")[:12], f"{v.size:,}", v.source, v.status,
                          "" if v.chunks is None else str(v.chunks), v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                          "*" if v.current else "")
        console.print(table)

    @files.command()
    def restore(
        path: Annotated[str, typer.Argument(help="A file under uploads/.")],
        version: Annotated[int, typer.Option("--version", help="The version to bring back.")],
        wait: Annotated[bool, typer.Option("--wait", help="Return once it is indexed.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Make an earlier version current again (recorded as a new version) and re-index it."""
        from hybrid_llm import rag_client
        from hybrid_llm.temporal import connect

        cfg = settings()

        async def go():
            uploads = _uploads(cfg)
            try:
                client = await connect(cfg)
                receipt, handle = await rag_client.restore(client, cfg, uploads, path, version)
            except _input_errors() as e:
                raise CLIError(str(e), code=EXIT_BAD_INPUT) from None
            finally:
                uploads.engine.dispose()
            result = await _wait(handle, as_json) if wait else None
            return receipt, handle, result

        receipt, handle, result = run(go())
        if as_json:
            print(json.dumps({**receipt.model_dump(mode="json"), "workflow_id": handle.id,
                              "result": result.model_dump(mode="json") if result else None}))
            return
        console.print(f"{receipt.path}: v{version} restored as v{receipt.version}"
                      + (f"; {result.action}: {result.chunks} chunks" if result else f"; indexing in {handle.id}"),
                      highlight=False)
