"""The pets the shop sells. Code reads them from the running system's `GET /catalogue` and picks a product by its
title or by what it is (the dearest, the cheapest); only the tests that check the seed itself compare it with
`SEED`. Standard library only."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

# What Shared/Messaging/Catalogue.swift seeds, as the shop must serve it: id -> (title, unit price in dollars).
# For the tests of the catalogue itself; everything else asks GET /catalogue.
SEED = {
    "9305f481-8399-43de-9912-fd3d2b9f1069": ("Cat", 150),
    "417e0721-4317-41a6-bb57-54646ace9a0b": ("Dog", 200),
    "81ad9dae-3f63-4e64-baac-a984dfc2fb28": ("Bird", 30),
    "c7ced823-9d1b-4c36-8087-0b15208c94f7": ("Fish", 10),
    "1212b901-05c3-486e-af51-de54054604f8": ("Rabbit", 50),
    "0d1b5d4d-1206-4462-842f-130a9545a08f": ("Hamster", 30),
    "c2429581-7fd0-4ee5-b5c9-02a42be68db0": ("Pony", 3000),
    "3aad800f-44e2-445b-9bec-cbb7f0b14bef": ("Chicken", 20),
}

# Never a proxy for the services (they listen on loopback).
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Catalogue:
    """The products of GET /catalogue (`id`, `title`, `unitPrice` in dollars, `imageUrl`, `stock`), in its order."""

    def __init__(self, products: list[dict[str, Any]]):
        self.products = products
        self.by_id = {product["id"]: product for product in products}
        self.by_title = {product["title"]: product for product in products}

    @classmethod
    def fetch(cls, order_url: str, timeout: float = 10) -> Catalogue:
        """GET /catalogue from the Order service at `order_url`; raises when it does not answer 200."""
        with _opener.open(f"{order_url.rstrip('/')}/catalogue", timeout=timeout) as response:
            return cls(json.loads(response.read()))

    def ids(self) -> list[str]:
        return [product["id"] for product in self.products]

    def id(self, title: str) -> str:
        return self.by_title[title]["id"]

    def title(self, product_id: str) -> str:
        return self.by_id[product_id]["title"]

    def titles(self) -> dict[str, str]:
        """id -> title, as an order's lines carry them."""
        return {product["id"]: product["title"] for product in self.products}

    def price(self, product_id: str) -> float:
        """The unit price in dollars."""
        return self.by_id[product_id]["unitPrice"]

    def price_cents(self, product_id: str) -> int:
        return round(self.price(product_id) * 100)

    def dearest(self) -> dict[str, Any]:
        return max(self.products, key=lambda product: product["unitPrice"])

    def cheapest(self) -> dict[str, Any]:
        return min(self.products, key=lambda product: product["unitPrice"])
