"""Money parsing a hand-made mutation showed the suite did not pin down."""

from __future__ import annotations

import pytest

from sitoo_sync.normalize.pos_z_reports import normalize_window
from tests.support import vendor_example


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10000000000000000.00", "out of range for DECIMAL(18,2)"),
        (-(10**16), "out of range for DECIMAL(18,2)"),
        (True, "not an amount of money"),
        (False, "not an amount of money"),
    ],
)
def test_money_just_past_decimal_18_2_or_a_boolean_rejects_its_record(
    value: object, reason: str
) -> None:
    """10^16 is the first amount DECIMAL(18,2) cannot hold, and a JSON boolean is no amount
    (not 1.00 or 0.00): either rejects its record with the reason, and the others load."""
    good = vendor_example()
    bad = {**good, "zreportid": 3, "moneysalestotal": value}
    window = normalize_window([bad, good])
    [reject] = window.rejects
    assert reason in reject.reason
    assert window.tables["pos_z_reports"].column("zreportid").to_pylist() == [good["zreportid"]]
