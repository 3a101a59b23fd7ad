"""Personal data minimization: what happens to columns declared `personal`.

`SITOO_PERSONAL_DATA` chooses, for every such column of every table:

* `drop` (the default): nothing is stored, the column stays NULL;
* `hash`: a keyed HMAC-SHA256 of the value (hex), with the key from
  `SITOO_PERSONAL_DATA_KEY`, so a customer can still be counted and joined across tables
  and loads, but not read back; the same value always gives the same hash under one key;
* `keep`: the value as the vendor sent it.

Only text and JSON columns may be personal (a hash is text). A table that has personal
columns also keeps its `extra` (fields no column declares) only under `keep`: a personal
field the vendor starts sending tomorrow has no declaration yet. Values never reach a log line,
and a rejected record is minimized the same way before `rejects` keeps it raw.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sitoo_sync.normalize.tables import Kind, Table
from sitoo_sync.normalize.values import dumps_json

Mode = Literal["drop", "hash", "keep"]
MODES: tuple[Mode, ...] = ("drop", "hash", "keep")


@dataclass(frozen=True)
class PersonalData:
    """The mode, and the key a `hash` uses (never logged, never stored)."""

    mode: Mode = "drop"
    key: bytes = b""

    def __repr__(self) -> str:  # the key must not reach a log line, even by accident
        return f"PersonalData(mode={self.mode!r})"

    def apply(self, obj: Mapping[str, Any], names: frozenset[str]) -> Mapping[str, Any]:
        """`obj` with the fields in `names` dropped, hashed or kept."""
        if self.mode == "keep":
            return obj
        present = names.intersection(obj)
        if not present:
            return obj
        out = dict(obj)
        for name in present:
            out[name] = None if self.mode == "drop" else self.digest(out[name])
        return out

    def digest(self, value: Any) -> str | None:
        """The keyed hash of one value (None stays None)."""
        if value is None or value == "":
            return None
        text = value if isinstance(value, str) else dumps_json(value)
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()


def personal_columns(table: Table) -> frozenset[str]:
    """The names of `table`'s personal columns; a personal column that is not text is a
    declaration error (a hash would not fit it)."""
    names = []
    for column in table.columns:
        if not column.personal:
            continue
        if column.kind not in (Kind.TEXT, Kind.JSON):
            raise ValueError(f"{table.name}.{column.name}: only text or JSON can be personal")
        names.append(column.name)
    return frozenset(names)
