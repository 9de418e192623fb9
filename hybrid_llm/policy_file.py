"""The permission policy an entry point runs with: HYBRID_PERMISSIONS_FILE, or the defaults in domain/."""

from __future__ import annotations

from domain.permissions import PermissionPolicy
from hybrid_llm.settings import Settings


def load_policy(settings: Settings) -> PermissionPolicy:
    if settings.permissions_file is None:
        return PermissionPolicy()
    try:
        return PermissionPolicy.from_toml(settings.permissions_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"permission policy {settings.permissions_file}: {e}") from None
