"""HTTP to the services as the operator: one session per thread (never through a proxy), and reads that try every
replica of a service."""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from chaos.layout import service_urls
from pets.secrets import operator_headers

_local = threading.local()


def session() -> requests.Session:
    if not hasattr(_local, "session"):
        s = requests.Session()
        s.trust_env = False  # never a proxy for loopback
        s.headers.update(operator_headers())
        _local.session = s
    return _local.session


def get_json(service: str, path: str, *, attempts: int = 8, timeout: float = 10) -> Any:
    """GET from either replica of a service, retrying; raises the last error."""
    last: Exception | None = None
    urls = service_urls(service)
    for attempt in range(attempts):
        url = urls[attempt % len(urls)] + path
        try:
            response = session().get(url, timeout=timeout)
            if response.status_code == 200:
                return response.json()
            last = RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:200]}")
            if response.status_code == 404:
                raise last
        except requests.RequestException as error:
            last = error
        time.sleep(min(0.2 * 2 ** attempt, 2))
    assert last is not None
    raise last
