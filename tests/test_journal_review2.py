"""Second adversarial review of the POS journal: hostile receipts, signs, cursors."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sitoo_sync.normalize.journal_entries import normalize_window as reference
from sitoo_sync.normalize.journal_pages import decode_page, normalize_window, normalize_windows
from sitoo_sync.normalize.personal import MODES, STAFF_NAMES, PersonalData
from sitoo_sync.simulator import SimConfig, World
from sitoo_sync.simulator.journal import journal_page
from tests.test_journal_entries import vendor_entries
from tests.test_journal_pages import _DICTS, assert_same_window
from tests.test_journal_review import entry, journal_failures, stored_ids, tick

REGISTER = "{2AA484B4-2B5F-55AB-128A-7DB46E573357}"
OTHER = "{7460F103-0000-4000-8000-000000000001}"
T0 = 1_700_000_000

# ---- the two normalizers on hostile receipts ---------------------------------------------

#: Quantities and rates as a register might send them: padded, signed, exponents, digits
#: of other scripts, more places than a column holds, numbers and text.
DECIMALS: tuple[Any, ...] = (
    "1.000", "0.000", "-1.000", "+2.000", " 2.000", "2.000 ", "\t-3.500", "1_000.000",
    "0.350", "-0.125", "1e2", "1E+15", "\u0662.\u0665", ".5", "5.", "-0", "1.0005", "NaN",
    "Infinity",
    "", " ", "abc", 2, -2, 0, Decimal("2.5"), Decimal("-0.125"), Decimal("1E+2"),
    Decimal("1.0001"), True, None, [], {},
)  # fmt: skip
#: Counts as a register might send them: ints, digit strings, integral numbers, and what
#: no BIGINT or DECIMAL(18,3) holds.
COUNTS: tuple[Any, ...] = (
    1, -1, 0, 2, "3", "-3", " 3", "3.0", "-0", "\u0663", "\u00b2", Decimal("2.0"),
    Decimal("2.5"), Decimal("1E+2"), 10**15 - 1, 10**15, -(10**16), 2**63, "", True, None, [], {},
)  # fmt: skip
#: Amounts as a register might send them: the contract's form and everything around it.
MONIES: tuple[Any, ...] = (
    "100.00", "-100.00", "+5.00", "-0.00", "0.00", " 5.00", "5.00 ", "12.5", "12", "1.005",
    "9999999999999999.99", "10000000000000000.00", "1e3", "", None, 5, -5, Decimal("12.50"),
    Decimal("-0.01"), Decimal("1.001"), True, [], {"amount": "1.00"},
)  # fmt: skip
#: What a text field, a flag or an additionaldata value may be instead of a string.
OTHERS: tuple[Any, ...] = (
    None, "", "x", " true ", "true", "false", "TRUE", True, False, 0, 1, 200, -1,
    Decimal("1.5"), [], ["a"], {}, {"a": 1}, "Europe/Stockholm", "Mars/Olympus",
)  # fmt: skip


class Hostile(random.Random):
    """A seeded generator whose odd values come at `rate` (per window: most windows are
    clean or nearly so, or the columnar path would refuse them all and prove nothing)."""

    rate = 0.0

    def odd(self, weight: float = 1.0) -> bool:
        """Whether this value is an odd one."""
        return self.random() < self.rate * weight


def _pick(rng: Hostile, values: tuple[Any, ...], usual: Any, odd: float = 1.0) -> Any:
    """`usual` most of the time, else one of `values`."""
    return rng.choice(values) if rng.odd(odd) else usual


def _additional(rng: Hostile, keys: dict[str, Any]) -> Any:
    """An additionaldata object, or now and then something that is not one."""
    if rng.odd(0.3):
        return rng.choice((None, "", "x", 0, 1, [], ["a"], True, {}))
    made = {k: _pick(rng, OTHERS, v) for k, v in keys.items() if not rng.odd(0.5)}
    if rng.odd():
        made["zz-unlisted"] = rng.choice(OTHERS)
    if rng.odd(0.3):
        made["nested"] = {"deep": [1, {"x": None}]}
    return made


def _item(rng: Hostile) -> Any:
    if rng.odd(0.2):
        return rng.choice((None, "item", 3, []))
    item: dict[str, Any] = {
        "additionaldata": _additional(
            rng,
            {"item-delivered": "true", "item-productid": "16", "product-group-name": "Std"},
        ),
        "decimalunitquantity": _pick(rng, DECIMALS, rng.choice(("1.000", "2.000", "0.350")), 3),
        "moneyrowprice": _pick(rng, MONIES, "49.50", 3),
        "name": _pick(rng, OTHERS, "Mug"),
        "sku": _pick(rng, OTHERS, "MUG-1"),
        "vatvalue": _pick(rng, DECIMALS, 25),
    }
    if rng.odd(0.5):
        item["discounts"] = rng.choice((None, "3 FOR 2", {}, [None], 7))
    else:
        item["discounts"] = [
            {
                "discountname": _pick(rng, OTHERS, "3 FOR 2"),
                "moneydiscount": _pick(rng, MONIES, "10.00", 2),
            }
            for _ in range(rng.randint(0, 2))
        ]
    if rng.random() < 0.7:  # the count, as the vendor's order items carry it; else old shape
        item["quantity"] = _pick(rng, COUNTS, rng.choice((1, 1, 2, 3)), 3)
    if rng.odd(2):
        item["decimalquantitytotal"] = _pick(rng, DECIMALS, "0.700")
    for name in list(item):
        if rng.odd(0.2):
            del item[name]
    return item


def _payment(rng: Hostile) -> Any:
    if rng.odd(0.2):
        return rng.choice((None, "Cash", 5))
    payment: dict[str, Any] = {
        "moneyamount": _pick(rng, MONIES, rng.choice(("-50.00", "150.00", "0.00")), 3),
        "name": _pick(rng, OTHERS, rng.choice(("Cash", "Card", "Change", "Swish"))),
    }
    if rng.odd(0.5):  # a card split in sub-payments, as the z-reports' payments are
        payment["subpayments"] = [{"name": "Visa", "moneysubtotal": "100.00"}]
    return payment


def _receipt_data(rng: Hostile) -> Any:
    if rng.odd(0.2):
        return rng.choice((None, "", [], "receipt", 0, {}))
    data: dict[str, Any] = {
        "additionaldata": _additional(
            rng,
            {
                "pos-receiptid": "SIE000015010002310000",
                "pos-timezone": rng.choice(("Europe/Stockholm", "America/New_York", "")),
                "store-externalid": "200",
                "store-name": "Concept",
                "pos-staff-userid": "{25BA93F6}",
            },
        ),
        "comment": _pick(rng, OTHERS, ""),
        "currencycode": _pick(rng, OTHERS, rng.choice(("SEK", "EUR", "NOK"))),
        "isrefund": _pick(rng, OTHERS, rng.random() < 0.4),
        "moneytotal": _pick(rng, MONIES, rng.choice(("150.00", "-150.00", "0.00")), 3),
        "items": (
            rng.choice((None, "items", {}, 4))
            if rng.odd(0.2)
            else [_item(rng) for _ in range(rng.randint(0, 4))]
        ),
        "payments": (
            rng.choice((None, "Card", {}, 4))
            if rng.odd(0.2)
            else [_payment(rng) for _ in range(rng.randint(0, 3))]
        ),
    }
    for name in list(data):
        if rng.odd(0.2):
            del data[name]
    return data


def _event_data(rng: Hostile, kind: str) -> Any:
    if rng.odd(0.2):
        return rng.choice((None, "", [], 1))
    data: dict[str, Any] = {
        "staff": _pick(rng, OTHERS, "POS Staff"),
        "staffuserid": _pick(rng, OTHERS, "{25BA93F6}"),
    }
    if kind.startswith("cash-"):
        data["currencycode"] = _pick(rng, OTHERS, "SEK")
        data["moneycash"] = _pick(rng, MONIES, "-500.00" if kind == "cash-bank" else "5000.00")
    if rng.odd(0.3):
        data["drawer"] = 2
    return data


KINDS = (
    "receipt", "receipt", "receipt", "cash-start", "cash-bank", "cash-petty", "login",
    "logout", "open-cash-drawer", "report-z", "ctu-error", "loyalty-stamp",
)  # fmt: skip


def hostile_window(rng: Hostile, register: str = REGISTER) -> list[dict[str, Any]]:
    """A window of one register's entries, most of them receipts, with hostile values and
    shapes anywhere in them, now and then an id seen twice or an envelope value broken."""
    entries: list[dict[str, Any]] = []
    for n in range(rng.randint(1, 8)):
        kind = rng.choice(KINDS)
        entry: dict[str, Any] = {
            "data": _receipt_data(rng) if kind == "receipt" else _event_data(rng, kind),
            "dateadded": T0 + n // 3,
            "datecreated": T0 - rng.randint(0, 90_000),
            "id": n + 1,
            "ispractice": _pick(rng, OTHERS, rng.random() < 0.1, 0.3),
            "registerid": register,
            "registerkey": "SIE0000150100023",
            "type": kind,
        }
        if rng.odd(0.2):
            entry["id"] = rng.choice((1, 2**63, -1, "3", True, None))
        if rng.odd(0.2):
            entry["dateadded"] = rng.choice((-1, "x", 2**40, None, Decimal("1.5")))
        if rng.odd(0.2):
            entry["datecreated"] = rng.choice((-1, "x", None, 10**13))
        entries.append(entry)
    return entries


def _both(body: bytes, context: Any) -> None:
    """The columnar normalizer, alone and joined with another register's window whose ids
    repeat this one's, gives exactly what the reference normalizer gives for the page."""
    want = reference(_DICTS.decode(body)["items"], context)
    assert_same_window(normalize_window(decode_page(body)["items"], context), want)
    other = msgspec.json.encode({"items": [{**e, "registerid": OTHER} for e in vendor_entries()]})
    joined = normalize_windows(
        [(decode_page(body)["items"], context), (decode_page(other)["items"], context)]
    )
    assert_same_window(joined[0], want)
    assert_same_window(joined[1], reference(_DICTS.decode(other)["items"], context))


def test_the_two_normalizers_agree_on_hostile_receipts() -> None:
    """On generated windows of hostile receipts (padded, signed and exotic quantities and
    amounts, refunds, additionaldata that is no object or holds other types, items,
    discounts and payments of every shape, card sub-payments, keys seen twice, ids that
    repeat in another register's window, staff names kept, hashed or dropped), the
    columnar normalizer gives the reference normalizer's rows, rejects, notes and extra."""
    rng = Hostile(4)  # (a seed whose windows met every defect this review fixed)
    for _ in range(600):
        rng.rate = rng.choice((0.0, 0.005, 0.01, 0.02, 0.05))
        body = msgspec.json.encode({"items": hostile_window(rng)})
        mode = rng.choice((None, *MODES))
        context = None if mode is None else {STAFF_NAMES: PersonalData(mode, b"key")}
        _both(body, context)


@pytest.mark.parametrize("quantity", [" 2.000", "2.000 ", "\t2.000", " -2.000"])
def test_a_padded_quantity_on_a_refund_is_read_the_same_by_both_normalizers(
    quantity: str,
) -> None:
    """A quantity with white space around it (which a decimal column reads as the number)
    on a refund receipt is negated as that number by both normalizers: the reference one
    made '- 2.000' of it and rejected the receipt, the columnar one loaded it."""
    entries = vendor_entries()
    entries[2]["data"]["isrefund"] = True
    entries[2]["data"]["items"][0]["decimalunitquantity"] = quantity
    body = msgspec.json.encode({"items": entries})
    want = reference(_DICTS.decode(body)["items"])
    assert want.rejects == []
    [item] = want.tables["journal_receipt_items"].to_pylist()
    assert item["quantity_signed"] == -Decimal(quantity.strip())
    assert_same_window(normalize_window(decode_page(body)["items"]), want)


# ---- signs ----------------------------------------------------------------------------


def _refund(total: str, price: str, quantity: str, paid: str) -> list[dict[str, Any]]:
    """The vendor's example entries, its receipt a refund of one item and one payment."""
    entries = vendor_entries()
    data = entries[2]["data"]
    data.update(isrefund=True, moneytotal=total, payments=[{"name": "Card", "moneyamount": paid}])
    data["items"][0].update(moneyrowprice=price, decimalunitquantity=quantity)
    return entries


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(("100.00", "100.00", "1.000", "100.00"), id="magnitudes"),
        pytest.param(("-100.00", "-100.00", "-1.000", "-100.00"), id="signed-by-the-vendor"),
    ],
)
def test_a_refund_nets_off_sales_whichever_sign_the_register_sends(sent: Any) -> None:
    """A refund receipt's *_signed values are negative whether the register sends its
    amounts as magnitudes (as assumed) or signed negative as the vendor's orders are: a
    negative total is not negated into a sale. Both normalizers agree."""
    body = msgspec.json.encode({"items": _refund(*sent)})
    want = reference(_DICTS.decode(body)["items"])
    [receipt] = want.tables["journal_receipts"].to_pylist()
    [item] = want.tables["journal_receipt_items"].to_pylist()
    [payment] = want.tables["journal_receipt_payments"].to_pylist()
    assert receipt["moneytotal_signed"] == Decimal("-100.00")
    assert (item["moneyrowprice_signed"], item["quantity_signed"]) == (Decimal(-100), -1)
    assert payment["moneyamount_signed"] == Decimal("-100.00")
    assert_same_window(normalize_window(decode_page(body)["items"]), want)


# ---- the cursor ---------------------------------------------------------------------------


def test_an_entry_stamped_in_the_future_does_not_carry_the_cursor_past_later_entries(
    tmp_path: Path,
) -> None:
    """An entry whose dateadded lies years ahead (a clock gone wrong) loads, but the
    register's cursor stays at the newest time that is not ahead of the clock: taken as
    the cursor, it made every later tick ask from that year, and each entry added after it
    was never read."""
    now = int(time.time())
    entries = [entry(1, now - 100), entry(2, now - 90), entry(3, now + 10 * 365 * 86400)]

    def journal(params: Mapping[str, str]) -> bytes:
        since = int(params["date_from"])
        page = sorted((e for e in entries if e["dateadded"] >= since), key=lambda e: e["id"])
        return json.dumps({"items": sorted(page, key=lambda e: e["dateadded"])}).encode()

    db = tmp_path / "w.duckdb"
    assert journal_failures(tick(db, journal)) == []
    entries.append(entry(4, now - 5))  # added after the first tick read
    assert journal_failures(tick(db, journal)) == []
    assert stored_ids(db) == [1, 2, 3, 4]


def test_the_simulator_leads_a_page_that_ends_at_the_end_to_an_empty_one() -> None:
    """A full page that ends exactly where the register's entries do carries a `next` token
    (an API that does not count ahead cannot know it is the last), and the page it leads to
    is empty and has none: the sync meets an empty page behind a token, as it may live."""
    world = World(SimConfig(seed=11, days=2, now=1_750_000_000))
    register = world.registers[0].registerid
    count = len(world.journal.entries(register))
    query = {"register_id": [register], "date_type": ["added"], "num": [str(count)]}
    first = journal_page(world.journal, query)
    assert isinstance(first, dict)
    assert len(first["items"]) == count
    assert first["next"]
    last = journal_page(world.journal, {**query, "next": [first["next"]]})
    assert last == {"items": []}
