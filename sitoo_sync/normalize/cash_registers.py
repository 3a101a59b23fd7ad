"""Cash registers: the `posregister` objects of a site's listing → `cash_registers` rows.

The listing carries no site or time, so both come from the context: the site (the
partition) and when it was listed. `first_seen_at` is kept from the first listing that
showed the register; `missing_since` is set by the sync when a listing no longer shows it
(the register is kept, never deleted) and cleared when it shows up again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.records import (
    EXTRA,
    NormalizedWindow,
    Reject,
    TableBuilder,
    reject_for,
    require_object,
)
from sitoo_sync.normalize.tables import Table, integer, json_column, text, timestamp

STREAM = "cash_registers"

CASH_REGISTERS = Table(
    name="cash_registers",
    description="Every register of the configured sites, with when it was first and last listed.",
    columns=(
        text("registerid", nullable=False),
        integer("site_id"),
        text("manufacturerid"),
        text("registerkey"),
        text("company"),
        text("companyid"),
        text("address"),
        text("address2"),
        text("zip"),
        text("city"),
        text("state"),
        text("countryid"),
        text("currencycode"),
        text("receiptlanguagetag"),
        integer("storesettingid"),
        integer("warehouseid"),
        integer("salestaxgroupid"),
        timestamp("first_seen_at"),
        timestamp("last_seen_at"),
        timestamp("missing_since"),
        json_column(EXTRA),
    ),
    key=("registerid",),
    keep_on_update=("first_seen_at",),
)
TABLES: tuple[Table, ...] = (CASH_REGISTERS,)

_builder = TableBuilder(CASH_REGISTERS, prefix=())


def normalize_window(
    records: Iterable[Any], context: Mapping[str, Any] | None = None
) -> NormalizedWindow:
    """One page of a site's listing; `context` gives `partition` (the site) and `now`."""
    context = context or {}
    site = int(context["partition"]) if context.get("partition") else None
    now = context.get("now")
    seen = int(now.timestamp()) if now is not None else None
    rejects: list[Reject] = []
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        try:
            obj = require_object(record, "record")
            registerid = obj.get("registerid")
            if not isinstance(registerid, str) or not registerid:
                raise RecordRejected("missing or empty key field", field="registerid")
        except RecordRejected as exc:
            rejects.append(reject_for(STREAM, record, exc.reason, None))
            continue
        latest[registerid] = {
            **obj,
            "site_id": site,
            "first_seen_at": seen,
            "last_seen_at": seen,
            "missing_since": None,
        }
    rows = list(latest.values())
    errors: dict[int, str] = {}
    table = _builder.build(rows, [], errors)
    if errors:
        for index, reason in sorted(errors.items()):
            rejects.append(reject_for(STREAM, records_of(rows, index), reason, None))
        keep = [i not in errors for i in range(len(rows))]
        import pyarrow as pa

        table = table.filter(pa.array(keep, pa.bool_()))
    return NormalizedWindow(
        tables={CASH_REGISTERS.name: table},
        parent_keys=table.select(["registerid"]),
        rejects=rejects,
    )


def records_of(rows: list[Mapping[str, Any]], index: int) -> Mapping[str, Any]:
    """The listed object behind row `index`, without the fields added here."""
    added = {"site_id", "first_seen_at", "last_seen_at", "missing_since"}
    return {k: v for k, v in rows[index].items() if k not in added}
