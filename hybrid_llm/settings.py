"""One settings object, built only by entry points (CLI, API, worker).

Sources, strongest first: constructor arguments, environment (`HYBRID_*`), the optional TOML file
named by `HYBRID_CONFIG_FILE` (default `./hybrid.toml` when it exists), then the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


def _config_file() -> Path | None:
    named = os.environ.get("HYBRID_CONFIG_FILE")
    if named:
        return Path(named)
    local = Path("hybrid.toml")
    return local if local.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYBRID_", extra="ignore")

    state_dir: Path = Field(default=Path.home() / ".hybrid-llm",
                            description="Where the embedded services keep their data, logs and pid files.")
    root: Path | None = Field(default=None, description="Platform root with downloads/, uploads/, rag/ "
                                                        "(default: <state_dir>/root).")
    # Temporal: unset address = the embedded dev server on temporal_port.
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_port: int = Field(default=7233, ge=1, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    task_queue: str = "hybrid-llm"
    # PostgreSQL: unset URL = the embedded server in <state_dir>/postgres.
    database_url: str | None = None
    postgres_port: int = Field(default=5433, ge=1, le=65535)
    # Model registry: a TOML file; unset = the default shipped in the package.
    models_file: Path | None = None
    # HTTP API.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    # Remote CLI: with both set, every CLI command goes through that API with that key (not through Temporal).
    api_url: str | None = Field(default=None, description="HYBRID_API_URL, e.g. http://host:8000")
    api_key: SecretStr | None = Field(default=None, description="HYBRID_API_KEY: an `hlk_...` key (or a JWT)")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest request body the API reads "
                                "(uploads: 2 x max_upload_bytes + 64 KiB); counted while reading, not from headers.")
    # Optional OIDC/JWT bearer tokens, verified against a JWKS (file path or https URL).
    oidc_jwks: str | None = Field(default=None, description="JWKS file or URL; unset = API keys only.")
    oidc_issuer: str | None = Field(default=None, description="Required `iss` of accepted tokens.")
    oidc_audience: str | None = Field(default=None, description="Required `aud` of accepted tokens.")
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    oidc_roles_claim: str = Field(default="groups", description="Claim holding the caller's groups or roles.")
    oidc_role_map: dict[str, list[str]] = Field(default_factory=dict, description="Claim value -> our roles, e.g. "
                                                "{\"llm-admins\": [\"operator\"]}; unmapped values grant nothing.")
    oidc_models_claim: str | None = Field(default=None, description="Claim with the model allowlist (a list).")
    # Activity tuning (seconds). Short heartbeats make recovery from a dead worker quick.
    llm_heartbeat_timeout_s: float = Field(default=1.5, gt=0)
    llm_start_to_close_s: float = Field(default=600.0, gt=0)
    llm_max_attempts: int = Field(default=3, ge=1)
    local_call_max_ms: float = Field(default=1000.0, ge=0, description=(
        "A model call this worker's own pool serves, expected to take at most this long (its measured time per "
        "token x max_tokens), runs as a local activity inside the workflow task: no dispatch, no second task. 0: "
        "never. Streamed answers never do."))
    scan_memory: int = Field(default=4096, ge=0, description=(
        "How many recent guardrail verdicts a worker keeps (by the sha256 of the text, kind, source and layers): a "
        "text scanned before the same way is not scanned again. 0: none."))
    workflow_task_timeout_s: float = Field(default=2.0, gt=0, le=120, description=(
        "The workflow task timeout of requests (set by the client that starts them) and of the child workflows "
        "that call models. A worker that dies during a call run as a local activity is noticed when its task "
        "times out; a longer call keeps its task alive (the SDK heartbeats it)."))
    model_cooldown_s: float = Field(default=60.0, ge=0)
    worker_threads: int = Field(default=16, ge=1)
    stream_batch_ms: int = Field(default=200, ge=10, le=5000, description=(
        "A streamed answer is published in batches at most this often (the first piece at once). Each batch is a "
        "signal, a workflow task and a history event: on a small host that work competes with the model's "
        "generation (measured on 2 cores: 75 ms batches cost ~15% of the tokens/s, 200 ms ~0-5%)."))
    workflow_sandbox: bool = Field(default=False, description="Run workflow code in the SDK's sandbox in the worker "
                                   "too (slower); replays (audit verify, tests) always use the full sandbox.")
    embed_threads: int = Field(default=1, ge=1, le=64, description=(
        "Threads per MiniLM embedding (ONNX Runtime's, or torch's without it). One: the worker embeds many texts "
        "at once, and torch's own pool thrashes on a busy machine; raise it for a dedicated ingestion worker."))
    # Security: the permission policy (TOML; unset = the defaults in domain/permissions.py) and its triggers.
    permissions_file: Path | None = None
    permission_failure_threshold: int = Field(default=5, ge=1, description="More denied permission requests "
                                              "than this within the window lock the platform down.")
    permission_failure_window_s: float = Field(default=600.0, gt=0)
    approval_timeout_s: float = Field(default=86400.0, gt=0, description="How long a request waits for a person.")
    approvals_four_eyes: bool = Field(default=True, description="An approval must come from an approver who is not "
                                      "the requester (turn off only for one-person deployments; recorded per run).")
    approval_ttl_s: float = Field(default=900.0, gt=0, description="An approval must be used within this time.")
    # Lockdown: how many different operators must present the release secret; critical inputs per principal.
    lockdown_release_operators: int = Field(default=1, ge=1, le=5, description="Different operators whose valid "
                                            "release secret a release needs (2 = four eyes).")
    strike_threshold: int = Field(default=3, ge=0, description="More critical guardrail hits in one principal's own "
                                  "input than this within the window suspend that principal and alert operators.")
    strike_window_s: float = Field(default=3600.0, gt=0)
    # Resource monitor (in each worker): exhausted resources lock the platform down.
    monitor_memory_percent: float = Field(default=95.0, gt=0, le=100)
    monitor_backlog: int = Field(default=10_000, ge=1)
    monitor_every_s: float = Field(default=10.0, gt=0)
    # Guardrails: add the semantic layer (MiniLM k-NN against labelled attacks) to the rules at every scan point.
    guard_semantic: bool = False
    guard_int8: bool = Field(default=True, description="The learned guard layer embeds prompts on MiniLM's int8 "
                             "graph (half the time; same test-split figures within one row); false: fp32.")
    guard_model: str | None = Field(default=None, description="A registry model id asked for a second opinion where "
                                    "the semantic layer scans (the guard judge: a model call of the workflow, "
                                    "carried in the worker's policy as guard_judge_model).")
    # Delegation between models: how deep a chain may go, how many review -> revise rounds.
    delegation_max_depth: int = Field(default=3, ge=1, le=10)
    delegation_max_rounds: int = Field(default=2, ge=1, le=10)
    # Caps on what a request may ask for (refused above, never clamped), and how long a call bound to one worker's
    # pool waits for that worker before it is routed elsewhere.
    max_tokens_cap: int = Field(default=8192, ge=1)
    pool_schedule_to_start_s: float = Field(default=5.0, gt=0)
    # Audit: texts larger than this are stored by sha256 in the blob store, not in workflow history.
    blob_threshold_bytes: int = Field(default=4096, ge=0)
    # Observability: worker log format, OpenTelemetry tracing exporter, Prometheus metrics port (unset = off).
    log_format: Literal["text", "json"] = "text"
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str | None = Field(default=None, description="OTLP/HTTP traces endpoint (default: the "
                                      "exporter's, http://localhost:4318/v1/traces).")
    metrics_port: int | None = Field(default=None, ge=1, le=65535, description="Serve Prometheus metrics "
                                     "(Temporal's and ours) on 127.0.0.1:<port>/metrics.")
    metrics_host: str = "127.0.0.1"
    # Sandboxes: work folders (default <state_dir>/sandboxes), the microVM's kernel + initramfs (default
    # <venv>/share/hybrid-llm/microvm, from scripts/build_microvm_assets.sh), its accelerator, review wait.
    sandbox_dir: Path | None = None
    microvm_dir: Path | None = None
    microvm_accel: str = Field(default="tcg", pattern="^(tcg|kvm)$")
    sandbox_review_timeout_s: float = Field(default=86400.0, gt=0)
    # Operator caps on what a caller may ask for (above: refused, CLI exit 2 / API 422, never clamped).
    sandbox_max_memory_mb: int = Field(default=2048, ge=16)
    sandbox_max_pids: int = Field(default=256, ge=4)
    sandbox_max_cpu_percent: int = Field(default=200, ge=5)
    sandbox_max_cpu_s: int = Field(default=600, ge=1)
    sandbox_max_wall_s: float = Field(default=600.0, gt=0)
    sandbox_max_output_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    sandbox_max_file_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    sandbox_max_files: int = Field(default=1000, ge=0)
    # Each output stream beyond this many bytes is trimmed inside the activity; the whole of it goes to the blob store.
    sandbox_history_output_bytes: int = Field(default=64 * 1024, ge=1024, le=256 * 1024)
    # Routing: add MiniLM embedding similarity to the rules (~5 s model load once, then a few ms per request).
    router_embeddings: bool = False
    sticky_queue_timeout_s: float = Field(default=0.5, gt=0, description="How soon a dead worker's cached "
                                          "workflows move to other workers.")
    # Documents and RAG: the worker watches uploads/ and indexes new, changed and deleted files.
    watch_uploads: bool = True
    watch_debounce_ms: int = Field(default=400, ge=10, le=60_000)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1, description="Larger uploads are refused.")
    # Retrieval: vector + full-text candidates fused (linear: cosine + rag_text_weight x matched IDF share; or
    # rrf: reciprocal rank fusion), then diversified (MMR) with at most rag_per_document passages of one document;
    # chunks the guardrails flagged at ingestion stay out of request context unless rag_allow_flagged; an optional
    # local cross-encoder reranks the candidates.
    rag_fusion: Literal["linear", "rrf"] = "linear"
    rag_per_document: int = Field(default=2, ge=1, le=100)
    rag_mmr_lambda: float = Field(default=0.75, ge=0.0, le=1.0, description="1.0 = relevance only.")
    rag_candidates: int = Field(default=40, ge=1, le=1000)
    rag_vector_weight: float = Field(default=1.0, ge=0.0, le=10.0)
    rag_text_weight: float = Field(default=0.3, ge=0.0, le=10.0)
    rag_allow_flagged: bool = False
    rag_flag_at: Literal["low", "medium", "high", "critical"] = "medium"
    rag_reranker_path: Path | None = Field(default=None, description="A local sentence-transformers "
                                           "cross-encoder folder (none ships on PyPI; off when unset).")
    # Trust boundary: the keyring of the payload codec that seals every Temporal payload (default
    # <state_dir>/codec-keys.json, created by the first local entry point; compose mounts it as a secret).
    codec_keys_file: Path | None = None
    ui_origins: tuple[str, ...] = Field(default=(), description="Browser origins of Temporal Web UIs that may call "
                                        "the codec endpoint (the embedded UI's is always allowed).")
    # Temporal transport security (compose): mTLS to the frontend and a JWT for its authorizer. Unset = plaintext,
    # no token (the embedded dev server). Files are read at connect; the token goes out as `authorization: Bearer`.
    temporal_tls_ca: Path | None = Field(default=None, description="PEM CA that signed the Temporal server cert.")
    temporal_tls_cert: Path | None = Field(default=None, description="PEM client certificate (mTLS).")
    temporal_tls_key: Path | None = Field(default=None, description="PEM private key of temporal_tls_cert.")
    temporal_tls_server_name: str | None = Field(default=None, description="Name the server cert must carry.")
    temporal_jwt_file: Path | None = Field(default=None, description="File holding a JWT for Temporal's authorizer.")

    @model_validator(mode="after")
    def _temporal_tls_pairs(self) -> "Settings":
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("temporal_tls_cert and temporal_tls_key go together: set both or neither")
        return self

    def sandbox_caps(self):
        from domain.sandbox import LimitCaps

        return LimitCaps(memory_mb=self.sandbox_max_memory_mb, pids=self.sandbox_max_pids,
                         cpu_percent=self.sandbox_max_cpu_percent, cpu_s=self.sandbox_max_cpu_s,
                         wall_s=self.sandbox_max_wall_s, output_bytes=self.sandbox_max_output_bytes,
                         file_bytes=self.sandbox_max_file_bytes, max_files=self.sandbox_max_files)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            if not config_file.is_file():
                raise ValueError(f"HYBRID_CONFIG_FILE={config_file} does not exist")
            try:
                toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"config file {config_file} is not valid TOML: {e}") from None
            # A mistyped key would otherwise be ignored silently (temporal_adress -> an embedded server starts).
            unknown = sorted(set(toml.toml_data) - set(settings_cls.model_fields))
            if unknown:
                raise ValueError(f"config file {config_file}: unknown setting(s): {', '.join(unknown)}")
            sources.append(toml)
        return tuple(sources)

    @model_validator(mode="after")
    def _derive(self) -> "Settings":
        self.state_dir = self.state_dir.expanduser().resolve()
        self.root = (self.root or self.state_dir / "root").expanduser().resolve()
        if self.codec_keys_file is not None:
            self.codec_keys_file = self.codec_keys_file.expanduser().resolve()
        return self

    # Derived values -------------------------------------------------------------------------
    @property
    def embedded_temporal(self) -> bool:
        return self.temporal_address is None

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def temporal_ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.temporal_ui_port}" if self.embedded_temporal else None

    @property
    def codec_keyring_path(self) -> Path:
        return self.codec_keys_file or self.state_dir / "codec-keys.json"

    @property
    def postgres_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"postgresql+psycopg://postgres@/postgres?host={self.postgres_dir / 'run'}&port={self.postgres_port}"

    @property
    def platform_dirs(self) -> dict[str, Path]:
        assert self.root is not None
        return {name: self.root / name for name in ("downloads", "uploads", "rag")}
