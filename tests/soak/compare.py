"""Compare every table of two schemas of one server as multisets of rows: the soak's verdict.

`python -m tests.soak.compare URL KIND CLEAN CHAOS` (KIND: postgres or mysql) prints one line
per table, `same` or how they differ, and exits 1 when any differs. Left out: the load
metadata (`_loaded_at`, `_run_id`) and the columns that say when a tick saw a row
(`first_seen_at`, `last_seen_at`, `missing_since`), which differ between two runs by design.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from sitoo_sync.normalize.tables import Kind, Table
from sitoo_sync.streams import STREAMS
from tests import targets
from tests.targets import Target

#: Columns whose values are the clock of the tick that wrote them.
CLOCK = frozenset({"first_seen_at", "last_seen_at", "missing_since"})


def _bag(target: Target, table: Table) -> Counter[tuple[Any, ...]]:
    """The table's rows as a multiset, JSON that a server hands back as a bare string (a
    hashed personal value) taken as it is."""
    plain = targets.canonical

    def canonical(kind: Kind, value: Any) -> Any:
        try:
            return plain(kind, value)
        except ValueError:
            return ("json string", value)

    targets.canonical = canonical
    try:
        rows = target.bag(table)
    finally:
        targets.canonical = plain
    names = [c for c in table.column_names if c not in targets.LOAD_METADATA_NAMES]
    keep = [i for i, name in enumerate(names) if name not in CLOCK]
    return Counter({tuple(row[i] for i in keep): n for row, n in rows.items()})


def main(argv: list[str]) -> int:
    url, kind, clean_schema, chaos_schema = argv
    clean, chaos = Target(kind, url, clean_schema), Target(kind, url, chaos_schema)
    tables = {t.name: t for s in STREAMS.values() for t in s.tables}
    differing = 0
    for name, table in tables.items():
        a, b = _bag(clean, table), _bag(chaos, table)
        if a == b:
            print(f"{name}: same ({sum(a.values())} rows)")
            continue
        differing += 1
        only_clean, only_chaos = sum((a - b).values()), sum((b - a).values())
        print(f"{name}: DIFFERENT, {only_clean} only in the clean run, {only_chaos} only in chaos")
    print(f"tables that differ: {differing}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
