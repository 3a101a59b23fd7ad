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

Staff names follow `SITOO_STAFF_NAMES` instead (`keep` by default, so reports of who closed a
register keep working; `hash` with the same key and the same HMAC, or `drop`). They are
found by their field names (`STAFF_NAME_KEYS`: the register staff's `staff` of z-reports,
cash and staff journal entries, and the `pos-staffsales-name` of an additionaldata object)
at any depth of a record, before anything is read from it: so every column, `extra`, JSON
column and rejected record holds the minimized value. Staff user ids and external ids are
pseudonymous ids, not names, and are kept. A raw JSON text kept as sent (a journal entry's
`data`) is rewritten only where such a field is, and otherwise stays byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import Any, Literal

from msgspec import Raw

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

    def minimized(self, value: Any) -> Any:
        """One value dropped, hashed or kept."""
        if self.mode == "keep":
            return value
        return None if self.mode == "drop" else self.digest(value)


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


#: The normalizer context's key for SITOO_STAFF_NAMES (a PersonalData; absent: keep).
STAFF_NAMES = "staff_names"
#: Fields that hold a staff member's name: `staff` (PosZReport, JournalStaff, JournalCash)
#: and the additionaldata key `pos-staffsales-name` (fact sheet 2.7: "staff name is PII").
STAFF_NAME_KEYS = frozenset({"staff", "pos-staffsales-name"})
_CONTAINERS = (dict, list)
_BACKSLASH = ord("\\")
_NAME_KEY = re.compile(
    b'"(?:' + b"|".join(re.escape(k.encode()) for k in sorted(STAFF_NAME_KEYS)) + rb')"\s*:\s*'
)
_HINT = "staff"  # in every name field's key: a text without it holds no name
assert all(_HINT in key for key in STAFF_NAME_KEYS)
#: What may be the end of a name field's key (its text from _HINT, and the quote): one
#: literal to look for, which a regex finds in a page's texts ~3x faster than _NAME_KEY.
_CANDIDATE = re.compile(
    _HINT.encode()
    + b"(?:"
    + b"|".join(re.escape(k.split(_HINT, 1)[1].encode()) for k in sorted(STAFF_NAME_KEYS))
    + b')"'
)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')  # a JSON string, escapes and all
_VALUE = json.JSONDecoder(parse_float=Decimal)  # numbers as the journal decoders read them


def staff_names(context: Mapping[str, Any] | None) -> PersonalData | None:
    """How the normalizer context asks staff names to be minimized; None: kept as sent."""
    names = context.get(STAFF_NAMES) if context else None
    return names if names is not None and names.mode != "keep" else None


def without_names(value: Any, names: PersonalData) -> Any:
    """A JSON value with the value of every staff-name field, at any depth, dropped or
    hashed; a value that holds none is returned as it is (not copied), as is any under keep."""
    if names.mode == "keep":
        return value
    if type(value) is dict:
        out: dict[str, Any] | None = None
        for key, item in value.items():
            if key in STAFF_NAME_KEYS:
                new = names.minimized(item)
            elif type(item) in _CONTAINERS:
                new = without_names(item, names)
            else:
                continue
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
        return value if out is None else out
    if type(value) is list:
        items = [without_names(item, names) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, Mapping):  # a record that reads like a dict (a typed journal entry)
        return without_names(dict(value.items()), names)
    return value


def text_without_names(raw: bytes | Raw, names: PersonalData) -> bytes | Raw:
    """A JSON text with the value of every staff-name field, at any depth, replaced by its
    minimized value; every other byte stays as it was (`raw` itself when it holds none, the
    text searched in place; and under keep). Raises ValueError when a name field's value
    is not JSON."""
    if names.mode == "keep" or _NAME_KEY.search(raw) is None:
        return raw
    text = bytes(raw)
    parts: list[bytes] = []
    done = 0
    for match in _NAME_KEY.finditer(text):
        if match.start() < done or _escaped(text, match.start()):
            continue  # inside a value replaced already, or a key's quote escaped in a string
        value, end = _json_value(text, match.end())
        if value is None:  # nothing to minimize
            continue
        parts += [text[done : match.end()], dumps_json(names.minimized(value)).encode()]
        done = end
    return raw if not parts else b"".join([*parts, text[done:]])


def texts_without_names(texts: list[Any], names: PersonalData) -> list[Any]:
    """`text_without_names` of each JSON text (bytes or Raw), looked for in all of them at
    once: the list itself when none holds a name (most of a journal page), or under keep."""
    if names.mode == "keep":
        return texts
    hits = [m.start() for m in _CANDIDATE.finditer(b"".join(texts))]
    if not hits:
        return texts
    ends = list(accumulate(map(len, texts)))
    out = list(texts)
    for row in {bisect_right(ends, hit) for hit in hits}:
        out[row] = text_without_names(texts[row], names)
    return out


def _json_value(raw: bytes, at: int) -> tuple[Any, int]:
    """The JSON value that starts at byte `at` of `raw`, and the byte after it."""
    string = _STRING.match(raw, at)
    if string is not None:  # a name: a string, read without decoding the rest
        return json.loads(string.group()), string.end()
    rest = raw[at:].decode()
    value, end = _VALUE.raw_decode(rest)
    return value, at + len(rest[:end].encode())


def _escaped(raw: bytes, quote: int) -> bool:
    """Whether the quote at `quote` is escaped (an odd run of backslashes before it): then
    it is within a string, and what follows is not a key."""
    run = 0
    while quote - run > 0 and raw[quote - run - 1] == _BACKSLASH:
        run += 1
    return run % 2 == 1
