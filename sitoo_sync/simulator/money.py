"""Money as the simulator keeps it: integer cents inside, the vendor's money strings outside.

No float is involved anywhere: a receipt's payments and a total's parts add up exactly.
"""

from __future__ import annotations

import random


def money(amount: int) -> str:
    """Integer cents as a money string, e.g. -1000050 → "-10000.50"."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 100)
    return f"{sign}{whole}.{frac:02d}"


def cents(value: str) -> int:
    """A money string as integer cents, e.g. "-10000.50" → -1000050."""
    sign = -1 if value.startswith("-") else 1
    whole, frac = value.lstrip("+-").split(".")
    return sign * (int(whole) * 100 + int(frac))


def net_of(gross: int, vat: int) -> int:
    """Net cents of a VAT-inclusive amount, rounded half up."""
    return (gross * 100 * 2 + (100 + vat)) // (2 * (100 + vat))


def receipt_payments(rng: random.Random, total: int, *, refund: bool) -> list[tuple[str, int]]:
    """How a receipt of `total` cents is paid, (name, cents) adding up to it: a sale by up to
    two payments (card, cash, cash and card, gift card and card), a refund back in cash."""
    if refund:
        return [("Cash", total)]
    kinds = rng.choice((("Card",), ("Cash",), ("Cash", "Card"), ("Gift Card", "Card")))
    parts = split_cents(rng, total, len(kinds)) if total >= 100 * len(kinds) else [total]
    return list(zip(kinds, parts, strict=False))


def split_cents(rng: random.Random, total: int, parts: int) -> list[int]:
    """`total` cents in `parts` amounts that add up to it exactly, each at least 1 cent when
    the total allows (the last takes the remainder)."""
    if parts <= 1 or abs(total) < parts:
        return [total] + [0] * (parts - 1)
    weights = [rng.randint(1, 10) for _ in range(parts)]
    whole = sum(weights)
    amounts = [max(1, total * w // whole) for w in weights[:-1]]
    return [*amounts, total - sum(amounts)]
