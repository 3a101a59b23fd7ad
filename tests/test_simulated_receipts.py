"""The simulator's journal receipts look like a shop's: baskets, split payments, discounts."""

from __future__ import annotations

from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.simulator.money import cents


def test_receipts_have_baskets_split_payments_discounts_and_refunds() -> None:
    """Across a month: receipts of several items and of several payments, discounted items,
    refunds; each item names its sku and product; items and payments add up to the total."""
    sim = Simulator.create(SimConfig(seed=5, days=30))
    receipts = [e["data"] for e in sim.world.journal.all_entries() if e["type"] == "receipt"]
    assert receipts
    assert any(len(r["items"]) > 1 for r in receipts)
    assert any(len(r["payments"]) > 1 for r in receipts)
    assert any(i["discounts"] for r in receipts for i in r["items"])
    assert any(r["isrefund"] for r in receipts)
    assert any(i["quantity"] > 1 for r in receipts for i in r["items"])
    for r in receipts:
        total = cents(r["moneytotal"])
        assert sum(cents(i["moneyrowprice"]) for i in r["items"]) == total
        assert sum(cents(p["moneyamount"]) for p in r["payments"]) == total
        for item in r["items"]:  # the catalogue's products: test_simulated_catalogue_sales
            assert item["sku"]
            assert item["name"]
