"""The running system's services: where each answers, and whether they are up (each one's GET /health)."""

from __future__ import annotations

import os
from typing import Mapping

import requests

# scripts/up's ports; scripts/test exports PETS_<SERVICE>_URL for its own.
DEFAULT_PORTS = {"Order": 8080, "Notifier": 8081, "Inventory": 8082, "Payment": 8083, "Orchestrator": 8084}


def url(service: str) -> str:
    """The base URL of a service (Order, Notifier, Inventory, Payment, Orchestrator): PETS_<SERVICE>_URL, else
    scripts/up's port on 127.0.0.1."""
    default = f"http://127.0.0.1:{DEFAULT_PORTS[service]}"
    return os.environ.get(f"PETS_{service.upper()}_URL", default).rstrip("/")


# Where the suites that test a running system (e2e, api, browser) reach it.
ORDER_URL = url("Order")
NOTIFIER_URL = url("Notifier")
INVENTORY_URL = url("Inventory")
PAYMENT_URL = url("Payment")
ORCHESTRATOR_URL = url("Orchestrator")


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
