"""Whether the services are up: each one's GET /health."""

from __future__ import annotations

from typing import Mapping

import requests


def not_ready(services: Mapping[str, str], timeout: float = 5) -> str | None:
    """Why the first of `services` (name -> base URL) that is not ready is not, or None when every /health
    answers 200."""
    for name, url in services.items():
        try:
            response = requests.get(f"{url}/health", timeout=timeout)
        except requests.RequestException as error:
            return f"{name} is not reachable at {url}: {error}"
        if response.status_code != 200:
            return f"{name} at {url} is not ready: {response.status_code} {response.text}"
    return None
