"""SearchWorkflow: one `rag.search` activity on a worker (the CLI and API stay free of torch)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.rag.search import SearchActivities
    from domain.rag import SearchQuery, SearchResults


@workflow.defn(name="SearchWorkflow")
class SearchWorkflow:
    @workflow.run
    async def run(self, query: SearchQuery) -> SearchResults:
        return await workflow.execute_activity_method(
            SearchActivities.search, query, start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3))
