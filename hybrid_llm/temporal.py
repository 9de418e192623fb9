"""How every entry point (worker, CLI, API, tests, benchmarks) talks to Temporal: through one plugin.

`HybridPlugin` bundles the sealing data converter (pydantic payloads, sealed by `hybrid_llm.codec`, failures with
their messages encoded too), the workflows, and the interceptors; a client connected with it hands all of that to
every worker built on it. The worker adds the activities built from its services (worker.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.plugin import SimplePlugin
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig, TLSConfig

from hybrid_llm.codec import Keyring, KeyringError, SealingCodec, load_or_create_keyring, read_keyring
from hybrid_llm.settings import Settings
from workflows import search_attributes
from workflows.delegation import DelegationWorkflow
from workflows.passthrough import workflow_runner
from workflows.ingest import IngestWorkflow
from workflows.lockdown import LockdownWorkflow
from workflows.permission import PermissionWorkflow
from workflows.pool import PoolWorkflow
from workflows.request import RequestWorkflow
from workflows.sandbox import SandboxWorkflow
from workflows.search import SearchWorkflow

WORKFLOWS = [RequestWorkflow, PoolWorkflow, LockdownWorkflow, PermissionWorkflow, DelegationWorkflow,
             IngestWorkflow, SearchWorkflow, SandboxWorkflow]


class SharedPayloadConverter(PydanticPayloadConverter):
    """The SDK builds a data converter per serialization context: for every payload it seals (the workflow id bound
    to it) and for every workflow activation (a command-aware copy). Each one constructs its payload converter, and a
    fresh pydantic converter starts with an empty cache of type adapters that it then rebuilds (~2 ms of worker CPU
    per request, on the worker's event loop). The converter holds no per-context state: every copy shares one."""

    _shared: SharedPayloadConverter | None = None

    def __new__(cls) -> SharedPayloadConverter:
        shared = cls._shared
        if shared is None:  # a race builds two, one of which is kept: harmless
            shared = super().__new__(cls)
            PydanticPayloadConverter.__init__(shared)
            cls._shared = shared
        return shared

    def __init__(self) -> None:  # built once, in __new__
        pass


# Reads payloads that are not sealed (search attributes are indexed in clear by design; tests build raw payloads).
PAYLOAD_CONVERTER = SharedPayloadConverter()


def data_converter(keyring: Keyring) -> DataConverter:
    """pydantic payloads, every one sealed; failure messages and stack traces sealed inside the failure too."""
    return DataConverter(payload_converter_class=SharedPayloadConverter, payload_codec=SealingCodec(keyring),
                         failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


class HybridPlugin(SimplePlugin):
    """The platform's Temporal configuration: sealing converter, workflows, interceptors. Give it to
    `Client.connect` (entry points) or to `Replayer`; workers built on such a client inherit it."""

    def __init__(self, keyring: Keyring, interceptors: Sequence = (), sandboxed: bool = False) -> None:
        self.keyring = keyring
        self.converter = data_converter(keyring)
        # Unsandboxed unless asked (workflows/passthrough.py: replays prove determinism under the full sandbox).
        super().__init__("hybrid-llm", data_converter=self.converter, workflows=list(WORKFLOWS),
                         interceptors=list(interceptors) or None, workflow_runner=workflow_runner(sandboxed))


def keyring_for(settings: Settings, create: bool = True) -> Keyring:
    """The codec keyring of this deployment. The default file in the state folder is created by the first local
    entry point that needs it; an explicitly configured file (HYBRID_CODEC_KEYS_FILE) must exist."""
    path: Path = settings.codec_keyring_path
    if create and settings.codec_keys_file is None:
        return load_or_create_keyring(path)
    return read_keyring(path)


def plugin_for(settings: Settings, keyring: Keyring | None = None) -> HybridPlugin:
    """The plugin with this deployment's keyring and interceptors (tracing when configured, metrics and per-run log
    lines; the worker-only ones are ignored by clients)."""
    from hybrid_llm.observability import worker_interceptors

    return HybridPlugin(keyring or keyring_for(settings), worker_interceptors(settings),
                        sandboxed=settings.workflow_sandbox)


class TemporalUnavailable(RuntimeError):
    """Temporal cannot be reached; the message says what to do."""


def transport_security(settings: Settings) -> tuple[TLSConfig | bool, str | None]:
    """(tls, bearer token) for the client from the temporal_tls_* and temporal_jwt_file settings: mTLS when a
    client cert is set, server-verified TLS when only a CA or server name is; plaintext and no token otherwise."""

    def read(path: Path, what: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            raise TemporalUnavailable(f"cannot read the Temporal {what} {path}: {e.strerror}") from None

    token = None
    if settings.temporal_jwt_file is not None:
        token = read(settings.temporal_jwt_file, "token (HYBRID_TEMPORAL_JWT_FILE)").decode().strip()
        if not token:
            raise TemporalUnavailable(f"the Temporal token file {settings.temporal_jwt_file} is empty")
    tls_set = (settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_server_name)
    if not any(v is not None for v in tls_set):
        return False, token
    ca, cert, key = settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key
    return TLSConfig(server_root_ca_cert=read(ca, "CA (HYBRID_TEMPORAL_TLS_CA)") if ca else None,
                     domain=settings.temporal_tls_server_name,
                     client_cert=read(cert, "client cert (HYBRID_TEMPORAL_TLS_CERT)") if cert else None,
                     client_private_key=read(key, "client key (HYBRID_TEMPORAL_TLS_KEY)") if key else None), token


async def connect(settings: Settings, timeout_s: float = 5.0, runtime: Runtime | None = None,
                  plugin: HybridPlugin | None = None) -> Client:
    """The one way to build a client: connected through the platform's plugin."""
    target = settings.temporal_target
    try:
        plugin = plugin or plugin_for(settings)
    except KeyringError as e:
        raise TemporalUnavailable(str(e)) from None
    tls, token = transport_security(settings)
    try:
        return await asyncio.wait_for(
            Client.connect(target, namespace=settings.temporal_namespace, plugins=[plugin], tls=tls, api_key=token,
                           retry_config=RetryConfig(max_retries=2), connect_timeout=timedelta(seconds=timeout_s),
                           runtime=runtime),
            timeout_s + 1)
    except (RuntimeError, asyncio.TimeoutError, OSError) as e:
        hint = ("run `hybrid-llm up` to start the embedded stack" if settings.embedded_temporal
                else "check HYBRID_TEMPORAL_ADDRESS and that the server is running")
        raise TemporalUnavailable(f"cannot reach Temporal at {target}: {e}; {hint}") from None


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register our search attributes (idempotent; works on the dev server and a real cluster)."""
    svc = client.operator_service
    existing = await svc.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {k.name: IndexedValueType.ValueType(int(k.indexed_value_type)) for k in search_attributes.ALL
               if k.name not in existing.custom_attributes}
    if missing:
        await svc.add_search_attributes(AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))


async def has_workers(client: Client, namespace: str, task_queue: str) -> bool:
    """Whether any worker polled the task queue recently (Temporal keeps pollers for ~1 minute)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    return len(resp.pollers) > 0


class PayloadReader:
    """Reads payloads out of a fetched or exported history: sealed ones are opened (checked to be ours), plain ones
    (search attributes, which Temporal indexes in clear) are read as they are."""

    def __init__(self, keyring: Keyring | None) -> None:
        self._codec = SealingCodec(keyring) if keyring is not None else None

    def value(self, payload, type_hint=None):
        from hybrid_llm.codec import SEALED_ENCODING, SealError

        if payload.metadata.get("encoding") == SEALED_ENCODING:
            if self._codec is None:
                raise SealError("this history is sealed: read it with the deployment's codec keyring")
            payload = self._codec.unseal(payload)
        return PAYLOAD_CONVERTER.from_payload(payload, type_hint)


def keyring_of(client: Client) -> Keyring | None:
    """The keyring of the HybridPlugin the client was connected with (None for a raw client)."""
    for plugin in client.config().get("plugins", ()):
        if isinstance(plugin, HybridPlugin):
            return plugin.keyring
    return None
