"""The catalogue a shopper sees."""

from conftest import catalogue, catalogue_stock, inventory_stock, wait_until
from pets.catalogue import SEED


def test_catalogue_matches_the_seed():
    items = catalogue()
    assert len(items) == 8
    by_id = {item["id"]: item for item in items}
    assert set(by_id) == set(SEED)
    for pid, (title, price) in SEED.items():
        item = by_id[pid]
        assert item["title"] == title
        assert item["unitPrice"] == price
        assert isinstance(item["imageUrl"], str) and item["imageUrl"], item
        assert isinstance(item["stock"], int) and item["stock"] >= 0, item


def test_catalogue_stock_agrees_with_inventory():
    authoritative = inventory_stock()
    assert set(authoritative) == set(SEED)
    wait_until(lambda: catalogue_stock() == inventory_stock(), timeout=5,
               message="catalogue stock equal to Inventory's stock")
