"""The payload codec that makes Temporal no way around the platform's entry points.

Every payload our entry points and workers write to Temporal (workflow inputs, signals, updates, queries, activity
inputs and results, memo, failures) is sealed with AES-256-GCM under a key only they hold. A payload is bound, as
authenticated associated data, to the key id and to what it was sealed for: the workflow id, and for activities
whether the call is local. Decoding refuses:
- anything not sealed (a stranger's workflow start, signal or activity schedule written with the default converter),
- anything sealed under a key we do not hold, or tampered with,
- a sealed payload copied into another workflow (or from a local activity into a remote one), when the SDK tells
  the codec what it is decoding for (temporalio's serialization context).
Without a context (reading an exported history, the Web UI's codec endpoint) a payload is only checked to be ours.

Keys live in a JSON keyring (`{"active": id, "keys": {id: base64}}`, mode 0600): the active key seals, every key
in the ring opens, so rotation is: add a key, make it active, keep the old one until no history needs it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

SEALED_ENCODING = b"binary/hybrid-sealed"
# What a refused payload decodes to: no converter knows this encoding, so the one value fails to convert while the
# rest of the workflow task goes on (the SDK drops a signal it cannot convert and rejects such an update; an
# activity fails with "Failed decoding arguments"). Raising in the codec instead would fail the whole workflow task
# again and again: one forged signal would wedge a running request.
REFUSED_ENCODING = b"binary/hybrid-refused"
_AAD_PREFIX = b"hybrid-llm/sealed/v1"
_NONCE_BYTES = 12


class SealError(ValueError):
    """A payload the platform's key did not seal (or sealed for something else): refused."""


class KeyringError(RuntimeError):
    """The codec keyring is missing or unreadable; the message says what to do."""


@dataclass(frozen=True)
class Keyring:
    active: str
    keys: dict[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise KeyringError(f"codec keyring: the active key {self.active!r} is not in the ring")
        for kid, key in self.keys.items():
            if len(key) != 32 or not kid or len(kid) > 64:
                raise KeyringError(f"codec keyring: key {kid!r} must be 32 bytes with an id of 1-64 characters")

    @classmethod
    def generate(cls, kid: str | None = None) -> Keyring:
        kid = kid or f"k{secrets.token_hex(4)}"
        return cls(active=kid, keys={kid: secrets.token_bytes(32)})

    def rotated(self) -> Keyring:
        """A ring with a new active key; old keys stay to open what they sealed."""
        new = Keyring.generate()
        return Keyring(active=new.active, keys={**self.keys, **new.keys})

    def to_json(self) -> str:
        return json.dumps({"active": self.active,
                           "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()}}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        try:
            data = json.loads(text)
            return cls(active=data["active"], keys={k: base64.b64decode(v, validate=True)
                                                    for k, v in data["keys"].items()})
        except (ValueError, KeyError, TypeError) as e:
            raise KeyringError(f"codec keyring is not valid: {e}") from None


def read_keyring(path: Path) -> Keyring:
    try:
        return Keyring.from_json(path.read_text())
    except FileNotFoundError:
        raise KeyringError(f"codec keyring {path} does not exist: run `hybrid-llm up` (it creates one in the state "
                           "folder) or point HYBRID_CODEC_KEYS_FILE at the deployment's keyring") from None
    except PermissionError:
        raise KeyringError(f"codec keyring {path} is not readable by this user") from None


def write_keyring(path: Path, ring: Keyring, *, exclusive: bool) -> None:
    """Write the ring readable by its owner only. `exclusive`: fail if the file exists (first writer wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(ring.to_json())
        return
    tmp = path.with_name(path.name + f".{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(ring.to_json())
    os.replace(tmp, path)


def load_or_create_keyring(path: Path) -> Keyring:
    """The ring at `path`, created (0600) when missing. Concurrent creators agree: the first file wins."""
    if not path.exists():
        try:
            write_keyring(path, Keyring.generate(), exclusive=True)
        except FileExistsError:
            pass
    return read_keyring(path)


def _binding(context: SerializationContext | None) -> bytes:
    """What a payload is sealed for, from the SDK's serialization context ('' when the SDK gives none)."""
    # Not the namespace: replaying a history (audit verify) happens outside the namespace it was recorded in.
    if isinstance(context, WorkflowSerializationContext):
        return f"wf|{context.workflow_id}".encode()
    if isinstance(context, ActivitySerializationContext) and context.workflow_id is not None:
        return f"wf|{context.workflow_id}|{'local' if context.is_local else 'remote'}".encode()
    return b""


class SealingCodec(PayloadCodec, WithSerializationContext):
    def __init__(self, keyring: Keyring, context: SerializationContext | None = None) -> None:
        super().__init__()
        self._ring = keyring
        self._ciphers = {kid: AESGCM(key) for kid, key in keyring.keys.items()}
        self._context = context
        self._binding = _binding(context)

    def with_context(self, context: SerializationContext) -> SealingCodec:
        codec = SealingCodec.__new__(SealingCodec)
        codec._ring, codec._ciphers, codec._context = self._ring, self._ciphers, context
        codec._binding = _binding(context)
        return codec

    @property
    def keyring(self) -> Keyring:
        return self._ring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open_or_refuse(p) for p in payloads]

    def _open_or_refuse(self, payload: Payload) -> Payload:
        try:
            return self.unseal(payload)
        except SealError as e:
            return Payload(metadata={"encoding": REFUSED_ENCODING}, data=str(e).encode())

    def seal(self, payload: Payload) -> Payload:
        kid = self._ring.active
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(nonce, payload.SerializeToString(), self._aad(kid, self._binding))
        return Payload(metadata={"encoding": SEALED_ENCODING, "key-id": kid.encode(), "bound-to": self._binding},
                       data=nonce + sealed)

    def unseal(self, payload: Payload) -> Payload:
        meta = payload.metadata
        if meta.get("encoding") != SEALED_ENCODING:
            raise SealError("refused a payload the platform did not seal (encoding "
                            f"{meta.get('encoding', b'none').decode(errors='replace')!r})")
        kid = meta.get("key-id", b"").decode(errors="replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealError(f"refused a payload sealed under an unknown key {kid!r}")
        bound = meta.get("bound-to", b"")
        if self._binding and bound != self._binding:
            raise SealError("refused a sealed payload that was sealed for another workflow or call "
                            f"({bound.decode(errors='replace')!r}, expected {self._binding.decode()!r})")
        data = payload.data
        try:
            plain = cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], self._aad(kid, bound))
        except Exception:  # cryptography raises InvalidTag; anything else is as bad
            raise SealError("refused a sealed payload that does not authenticate (tampered or forged)") from None
        out = Payload()
        out.ParseFromString(plain)
        return out

    @staticmethod
    def _aad(kid: str, binding: bytes) -> bytes:
        return _AAD_PREFIX + b"|" + kid.encode() + b"|" + binding
