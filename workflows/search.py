"""SearchWorkflow: one `rag.search` activity on a worker (the CLI and API stay free of torch)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import activity_stubs as act
    from domain.rag import SearchQuery, SearchResults


@workflow.defn(name="SearchWorkflow")
class SearchWorkflow:
    @workflow.run
    async def run(self, query: SearchQuery) -> SearchResults:
        return await act.rag_search(query, start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3))
