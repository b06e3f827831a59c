"""The secrets scripts/lib.sh generates (pets_secrets): exported by the caller, else read from .pets/secrets.env."""

from __future__ import annotations

import os
from pathlib import Path

from pets import REPO

SECRETS_FILE = REPO / ".pets" / "secrets.env"


def secret(name: str, path: Path = SECRETS_FILE) -> str | None:
    """The secret from the environment, else from `path` (KEY=value lines); None when neither has it."""
    if os.environ.get(name):
        return os.environ[name]
    if path.is_file():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == name:
                return value.strip().strip("'\"")
    return None


def operator_token() -> str:
    """The operator's bearer token, which every operator view and action asks for ("" when there is none)."""
    return secret("PETS_OPERATOR_TOKEN") or ""


def operator_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {operator_token()}"}
