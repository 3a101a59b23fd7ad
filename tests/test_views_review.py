"""The BI views over rows planted by hand where a review found a wrong figure: the same data
gives the same exact numbers on every target."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from tests.targets import Target, grouped_targets, holding_rows, view_rows

DAY = date(2026, 1, 2)

#: Loose goods sold by weight: 0.100 kg, 0.200 kg, and 0.100 kg refunded, on one day.
WEIGHED = (
    ("1", "0.100", "5.00", False),
    ("2", "0.200", "10.00", False),
    ("3", "0.100", "5.00", True),
)

ROWS: dict[str, list[dict[str, Any]]] = {
    "journal_receipts": [
        {
            "registerid": "{R1}",
            "id": int(i),
            "store_id": "S1",
            "business_date": DAY,
            "currencycode": "SEK",
            "isrefund": refund,
            "ispractice": False,
        }
        for i, _, _, refund in WEIGHED
    ],
    "journal_receipt_items": [
        {
            "registerid": "{R1}",
            "id": int(i),
            "position": 0,
            "productid": "7",
            "sku": "COFFEE-LOOSE",
            "decimalunitquantity": Decimal(kg),
            "moneyrowprice": Decimal(price),
        }
        for i, kg, price, _ in WEIGHED
    ],
}


@pytest.fixture(scope="module", params=grouped_targets("views-review"))
def planted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """Every stream's tables and the views on each target, holding ROWS."""
    with holding_rows(request.param, tmp_path_factory.mktemp(request.param), ROWS) as target:
        yield target


def test_product_sales_sum_fractional_quantities_exactly(planted: Target) -> None:
    """v_product_sales.quantity of goods sold by weight is the exact decimal sum on every
    target (SQLite summed the quantities as binary floats: 0.1 + 0.2 - 0.1 gave
    0.20000000000000004 there)."""
    [(quantity, amount)] = view_rows(
        planted,
        "SELECT quantity, amount_incl_vat FROM v_product_sales WHERE sku = 'COFFEE-LOOSE'",
    )
    assert (Decimal(str(quantity)), Decimal(str(amount))) == (Decimal("0.2"), Decimal("10.00"))
