"""The `hybrid-llm` command as a person runs it: real subprocesses, real Temporal, real local model."""

from __future__ import annotations

import json

from domain.requests import MAX_PROMPT_CHARS
from tests.conftest import scripted
from tests.processes import acli, cli


def assert_clean_error(proc, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


async def test_ask_json_with_the_real_local_model(settings, run_worker, local_pool):
    async with run_worker(local_pool):
        proc = await acli(settings, "ask", "--json", "--max-tokens", "16", "Say hello.")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["workflow_id"].startswith("request-")
    assert out["model"] == "smollm2-135m"
    assert out["answer"].strip()
    assert out["task_type"] == "general" and out["usage"]["completion_tokens"] > 0


async def test_ask_prints_the_answer_and_reads_stdin(settings, run_worker, scripted_pool):
    async with run_worker(scripted_pool(scripted("echo", reply="echo: {prompt}"))):
        proc = await acli(settings, "ask", "-", stdin="from stdin")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "echo: from stdin"
    assert "echo · general" in proc.stderr


async def test_models_shows_the_pool(settings, run_worker, scripted_pool):
    async with run_worker(scripted_pool(scripted("echo"), scripted("cloudy", local=False))):
        listed = await acli(settings, "models", "--json")
        loaded = await acli(settings, "models", "--load", "echo", "--json")
        table = await acli(settings, "models")
    assert listed.returncode == 0, listed.stderr
    models = {m["spec"]["id"]: m for m in json.loads(listed.stdout)["models"]}
    assert set(models) == {"echo", "cloudy"} and not models["echo"]["loaded"]
    assert {m["spec"]["id"]: m["loaded"] for m in json.loads(loaded.stdout)["models"]}["echo"] is True
    assert "echo" in table.stdout and "cloudy" in table.stdout


async def test_unknown_model_is_a_clear_error(settings, run_worker, scripted_pool):
    async with run_worker(scripted_pool(scripted("echo"))):
        proc = await acli(settings, "ask", "--model", "gpt-17", "hello")
    assert_clean_error(proc, 1, "UnknownModel", "gpt-17", "known models: echo")


def test_empty_and_oversized_prompts_are_rejected_before_anything_starts(settings):
    assert_clean_error(cli(settings, "ask", "   "), 2, "prompt is empty")
    assert_clean_error(cli(settings, "ask", "-", stdin="x" * (MAX_PROMPT_CHARS + 1)), 2, "at most 32000 characters")
    assert_clean_error(cli(settings, "ask", "--max-tokens", "0", "hi"), 2, "max_tokens")


def test_unreachable_temporal_is_a_clear_error(settings):
    proc = cli(settings, "ask", "hello", HYBRID_TEMPORAL_ADDRESS="127.0.0.1:1")
    assert_clean_error(proc, 3, "cannot reach Temporal at 127.0.0.1:1", "HYBRID_TEMPORAL_ADDRESS")


def test_bad_configuration_is_a_clear_error(settings, tmp_path):
    assert_clean_error(cli(settings, "ask", "hi", HYBRID_TEMPORAL_PORT="not-a-port"), 2, "invalid configuration",
                       "temporal_port")
    missing = tmp_path / "nope.toml"
    assert_clean_error(cli(settings, "worker", HYBRID_MODELS_FILE=str(missing)), 2, f"model registry {missing}",
                       "does not exist")


def test_short_cli_processes_never_crash_at_exit(settings):
    # sdk-python#300: a client process could abort at interpreter exit; we exit with os._exit.
    for _ in range(5):
        proc = cli(settings, "ask", "--model", "x", "hi", HYBRID_TEMPORAL_ADDRESS="127.0.0.1:1")
        assert proc.returncode == 3, proc.stderr


def test_usage_errors_are_one_clear_message(settings):
    assert_clean_error(cli(settings, "nosuchcmd"), 2, "No such command")
    assert_clean_error(cli(settings, "ask", "--max-tokens", "abc", "hi"), 2, "Invalid value for '--max-tokens'")
