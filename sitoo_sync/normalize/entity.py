"""The one normalizer: JSON records of a stream → its declared parent and child tables.

Driven entirely by declarations. A stream's normalize module declares its tables, which
JSON lists become which child tables (`ChildList`, `Nested`), and at most a `prepare`
function for the few rules that are truly its own (lifting a `data` object, adding the
site a listing came from, a local business day). Everything else happens here, once:

* the key is read from the parent table's declared key (`record_key`), typed by its kind,
  and a record whose key is missing or malformed is rejected with the field named;
* a key seen twice in one window keeps its last version;
* child rows get deterministic keys: the parent key, the list's `section` where several
  lists feed one table, and the 0-based `position` in the list;
* a child table's leading columns that the parent also has (e.g. its currency) are copied
  from the parent row, so a sum over a child table can group by them without a join;
* money, time and every other kind are converted by the column declarations (columns.py);
* columns declared `personal` are dropped, hashed or kept as `SITOO_PERSONAL_DATA` says;
* staff names, wherever they are in a record, as `SITOO_STAFF_NAMES` says (personal.py),
  before anything is read from it;
* any invalid value, the parent's or a child's, rejects the whole record with its reason,
  and the rest of the window loads.

Pure: no I/O, no clock; what it needs from outside arrives in `context`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sitoo_sync.errors import RecordRejected
from sitoo_sync.normalize.columns import Errors, empty_table
from sitoo_sync.normalize.personal import (
    PersonalData,
    personal_columns,
    staff_names,
    without_names,
)
from sitoo_sync.normalize.records import (
    EXTRA,
    NormalizedWindow,
    Reject,
    TableBuilder,
    reject_for,
    require_object,
)
from sitoo_sync.normalize.tables import KEY_TEXT_LENGTH, Kind, Table
from sitoo_sync.normalize.values import dumps_json, to_int_or_none

#: A stream's own rule, applied to each record before anything is read from it.
Prepare = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]]

SECTION = "section"
POSITION = "position"
DATA = "data"  # the one column of a table whose list entries are kept whole, as JSON


@dataclass(frozen=True)
class ChildList:
    """One JSON list in the parent record whose objects become rows of `table`.

    `section` tags the rows when several lists feed one table (sales, refund ...). A table
    with a `data` column right after `position` keeps each object whole, as JSON.
    """

    field: str
    table: Table
    section: str | None = None


@dataclass(frozen=True)
class Nested:
    """A JSON list inside each object of another child table (`within`), e.g. a payment's
    sub payments. Its rows also carry the containing object's position, in `position_of`."""

    field: str
    table: Table
    within: Table
    position_of: str


def record_key(table: Table, record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The record's value of `table.key`, checked against the key columns' kinds.

    A text key part must be a non-empty string of at most KEY_TEXT_LENGTH characters (what
    every target's key column holds) and an integer part an integer, or what its integer
    column reads as one (digits: `"2"` is 2, as the cursors and the partition listings read
    it too); anything else is a rejection naming the field.
    """
    key = []
    for name in table.key:
        value = record.get(name)
        kind = table.column(name).kind
        if kind is Kind.INT:
            if type(value) is not int and (value := to_int_or_none(value)) is None:
                raise RecordRejected(
                    f"missing or non-integer key field: {record.get(name)!r}", field=name
                )
        elif not isinstance(value, str) or not value:
            raise RecordRejected("missing or empty key field", field=name)
        elif len(value) > KEY_TEXT_LENGTH:
            raise RecordRejected(
                f"key field longer than {KEY_TEXT_LENGTH} characters ({len(value)})", field=name
            )
        key.append(value)
    return tuple(key)


def shown_key(table: Table, record: Any) -> str | None:
    """The record's key as text for `rejects`, as far as it can be read."""
    if not isinstance(record, Mapping):
        return None
    parts = [record.get(k) for k in table.key]
    if any(part is None for part in parts):  # say which part is missing, not `None/18`
        shown = ("<missing>" if v is None else v for v in parts)
        return "/".join(f"{k}={v}" for k, v in zip(table.key, shown, strict=True))
    return "/".join(str(part) for part in parts)


@dataclass
class _Flat:
    """The objects of one child table across a window, with where each came from."""

    objs: list[Mapping[str, Any]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # index of the parent record
    sections: list[str] = field(default_factory=list)
    within: list[int] = field(default_factory=list)  # position of the containing object
    positions: list[int] = field(default_factory=list)

    def add(self, items: list[tuple[int, Any]], owner: int, section: str, within: int) -> None:
        """The (position, object) pairs of one list, walked object by object."""
        for pos, item in items:
            self.objs.append(item)
            self.owners.append(owner)
            self.sections.append(section)
            self.within.append(within)
            self.positions.append(pos)


def _lead(table: Table) -> tuple[str, ...]:
    """The columns of a child table up to and including `position`: all supplied here."""
    names = table.column_names
    return names[: names.index(POSITION) + 1]


class EntityNormalizer:
    """Normalizes a window of one stream's records into its parent and child tables."""

    def __init__(
        self,
        *,
        stream: str,
        parent: Table,
        lists: Sequence[ChildList] = (),
        nested: Sequence[Nested] = (),
        prepare: Prepare | None = None,
    ) -> None:
        self.stream = stream
        self.parent = parent
        self.lists = tuple(lists)
        self.nested = tuple(nested)
        self.prepare = prepare
        self.children: tuple[Table, ...] = tuple(
            dict.fromkeys([*(c.table for c in lists), *(n.table for n in nested)])
        )
        self.tables: tuple[Table, ...] = (parent, *self.children)
        list_fields = {c.field for c in lists}
        self._builders = {parent.name: TableBuilder(parent, prefix=(), ignore=list_fields)}
        self._whole: set[str] = set()
        for table in self.children:
            lead = _lead(table)
            rest = table.column_names[len(lead) :]
            if rest[:1] == (DATA,) and table.column(DATA).kind is Kind.JSON:
                self._whole.add(table.name)
                continue
            ignore = [n.field for n in nested if n.within.name == table.name]
            self._builders[table.name] = TableBuilder(table, prefix=lead, ignore=ignore)
        self._personal = {t.name: personal_columns(t) for t in self.tables}
        #: Per table built by columns, the fields of an object that do not go to its
        #: `extra`: its declared columns, and the lists of their own it holds.
        self._known = {
            t.name: frozenset(t.column_names) - {EXTRA} | set(ignore)
            for t, ignore in (
                (self.parent, list_fields),
                *((c, [n.field for n in nested if n.within.name == c.name]) for c in self.children),
            )
            if t.name in self._builders
        }

    def __call__(
        self, records: Iterable[Any], context: Mapping[str, Any] | None = None
    ) -> NormalizedWindow:
        """Normalize one window; a key seen twice keeps its last version."""
        context = context or {}
        names = staff_names(context)
        rejects: list[Reject] = []
        latest: dict[tuple[Any, ...], tuple[Mapping[str, Any], Any]] = {}
        for record in records:
            if names is not None:  # a rejected record keeps no name either
                record = without_names(record, names)  # noqa: PLW2901
            obj = record  # shown as prepared as far as it got (the site a listing adds)
            try:
                obj = require_object(record, "record")
                if self.prepare is not None:
                    obj = self.prepare(obj, context)
                key = record_key(self.parent, obj)
            except RecordRejected as exc:
                kept = self._scrubbed(record, context.get("personal_data"))
                shown = shown_key(self.parent, obj)
                rejects.append(reject_for(self.stream, kept, exc.reason, shown))
                continue
            latest.pop(key, None)
            latest[key] = (obj, record)
        personal = context.get("personal_data")
        parents = self._minimized(self.parent, [obj for obj, _ in latest.values()], personal)
        originals = [raw for _, raw in latest.values()]
        errors: Errors = {}
        flats = self._flatten(parents, errors)
        built = self._builders[self.parent.name].build(parents, [], errors)
        built = self._minimized_extra(self.parent, built, personal)
        tables = {self.parent.name: built}
        owners = {self.parent.name: list(range(len(parents)))}
        for table in self.children:
            flat = flats.get(table.name, _Flat())
            tables[table.name] = self._child(table, flat, built, errors, personal)
            owners[table.name] = flat.owners
        if errors:
            for index, reason in sorted(errors.items()):
                record = self._scrubbed(originals[index], personal)
                shown = shown_key(self.parent, parents[index])
                rejects.append(reject_for(self.stream, record, reason, shown))
            tables = {
                name: data.filter(pa.array([i not in errors for i in owners[name]], pa.bool_()))
                for name, data in tables.items()
            }
        parent_keys = tables[self.parent.name].select(list(self.parent.key))
        # A record rejected for a field, not its key, was still listed: its key counts as
        # seen, so a full listing does not mark its stored row missing.
        listed = set(latest) if errors else None
        return NormalizedWindow(
            tables=tables, parent_keys=parent_keys, rejects=rejects, key_set=listed
        )

    def _minimized_extra(
        self, table: Table, built: pa.Table, personal: PersonalData | None
    ) -> pa.Table:
        """A table that holds personal columns keeps its undeclared fields (`extra`) only
        under `keep`: a personal field the vendor adds tomorrow must not slip in there (a
        hash of the whole object would be of no use, so `hash` drops it too)."""
        mode = personal or PersonalData()
        if mode.mode == "keep" or not self._personal[table.name]:
            return built
        if EXTRA not in table.column_names:
            return built
        index = table.column_names.index(EXTRA)
        return built.set_column(index, EXTRA, pa.nulls(built.num_rows, pa.string()))

    def _minimized(
        self, table: Table, objs: list[Mapping[str, Any]], personal: PersonalData | None
    ) -> list[Mapping[str, Any]]:
        """The objects with `table`'s personal columns dropped, hashed or kept."""
        names = self._personal[table.name]
        if not names or not objs:
            return objs
        mode = personal or PersonalData()
        return [mode.apply(obj, names) for obj in objs]

    def _scrubbed(self, record: Any, personal: PersonalData | None) -> Any:
        """A rejected record as `rejects` may keep it: its personal fields (the parent's and
        its lists' objects') minimized like the rows would have been, and, as a table with
        personal columns keeps its `extra` only under keep, without the fields its table
        does not declare (a personal field the vendor adds tomorrow)."""
        if not isinstance(record, Mapping) or not any(self._personal.values()):
            return record
        mode = personal or PersonalData()
        out = dict(
            self._declared(self.parent, mode.apply(record, self._personal[self.parent.name]), mode)
        )
        for spec in self.lists:
            items, names = out.get(spec.field), self._personal[spec.table.name]
            if names and isinstance(items, list):
                out[spec.field] = [
                    self._declared(spec.table, mode.apply(i, names), mode)
                    if isinstance(i, Mapping)
                    else i
                    for i in items
                ]
        return out

    def _declared(
        self, table: Table, obj: Mapping[str, Any], mode: PersonalData
    ) -> Mapping[str, Any]:
        """`obj` without the fields `table` does not declare, when `table` has personal
        columns and `mode` is not keep (what its `extra` would have dropped)."""
        known = self._known.get(table.name)
        if mode.mode == "keep" or known is None or not self._personal[table.name]:
            return obj
        return obj if known.issuperset(obj) else {k: v for k, v in obj.items() if k in known}

    def _flatten(self, parents: list[Mapping[str, Any]], errors: Errors) -> dict[str, _Flat]:
        """Child objects per child table, checking that every list holds objects.

        Every list is taken whole when each is absent or a list of objects (`_whole`), as
        JSON from the API almost always is; else the lists are walked object by object,
        which words what is wrong."""
        flats = self._whole_lists(parents)
        if flats is None:
            flats = self._walked_lists(parents, errors)
        for inner in self.nested:
            outer = flats.get(inner.within.name, _Flat())
            nested = _whole([[obj.get(inner.field) for obj in outer.objs]], outer.owners)
            if nested is not None and inner.table.name not in flats:  # not also a list's
                flat, sources = nested
                flat.sections = [outer.sections[s] for s in sources]
                flat.within = [outer.positions[s] for s in sources]
                flats[inner.table.name] = flat
                continue
            flat = flats.setdefault(inner.table.name, _Flat())
            for owner, section, where, obj in zip(
                outer.owners, outer.sections, outer.positions, outer.objs, strict=True
            ):
                what = f"{section + ' ' if section else ''}{inner.within.name}[{where}]"
                what += f".{inner.field}"
                flat.add(_objects(obj.get(inner.field), what, owner, errors), owner, section, where)
        return flats

    def _whole_lists(self, parents: list[Mapping[str, Any]]) -> dict[str, _Flat] | None:
        """Each child table's objects from the parents' lists, when every list is absent or
        holds only objects; else None."""
        flats: dict[str, _Flat] = {}
        owners = range(len(parents))
        for table in dict.fromkeys(spec.table for spec in self.lists):
            specs = [spec for spec in self.lists if spec.table is table]
            whole = _whole([[p.get(spec.field) for p in parents] for spec in specs], owners)
            if whole is None:
                return None
            flat, sources = whole
            if len(specs) == 1:
                flat.sections = [specs[0].section or ""] * len(flat.objs)
            else:
                names = [spec.section or "" for spec in specs]
                flat.sections = [names[s % len(specs)] for s in sources]
            flats[table.name] = flat
        return flats

    def _walked_lists(self, parents: list[Mapping[str, Any]], errors: Errors) -> dict[str, _Flat]:
        """Each child table's objects, list by list, recording what is not an object."""
        flats: dict[str, _Flat] = {}
        for index, parent in enumerate(parents):
            for spec in self.lists:
                items = _objects(parent.get(spec.field), spec.field, index, errors)
                flats.setdefault(spec.table.name, _Flat()).add(items, index, spec.section or "", -1)
        return flats

    def _child(
        self,
        table: Table,
        flat: _Flat,
        parent: pa.Table,
        errors: Errors,
        personal: PersonalData | None,
    ) -> pa.Table:
        """The rows of one child table: the lead columns supplied, the body built."""
        if not flat.objs:
            return empty_table(table)
        owners = pa.array(flat.owners, pa.int64())
        nested = next((n for n in self.nested if n.table.name == table.name), None)
        prefix: list[pa.Array] = []
        for name in _lead(table):
            if name == SECTION:
                prefix.append(pa.array(flat.sections, pa.string()))
            elif name == POSITION:
                prefix.append(pa.array(flat.positions, pa.int64()))
            elif nested is not None and name == nested.position_of:
                prefix.append(pa.array(flat.within, pa.int64()))
            else:  # a parent column: the key, or one copied onto every child row
                prefix.append(pc.take(parent.column(name).combine_chunks(), owners))
        if table.name in self._whole:
            data: list[str | None] = []
            for i, obj in enumerate(flat.objs):
                try:
                    data.append(dumps_json(obj))
                except RecordRejected as exc:
                    errors.setdefault(flat.owners[i], f"{table.name}.{DATA}: {exc.message}")
                    data.append(None)
            arrays = [*prefix, pa.array(data, pa.string())]
            return pa.Table.from_arrays(arrays, names=list(table.column_names))
        child_errors: Errors = {}
        objs = self._minimized(table, flat.objs, personal)
        built = self._builders[table.name].build(objs, prefix, child_errors)
        built = self._minimized_extra(table, built, personal)
        for i, reason in child_errors.items():
            errors.setdefault(flat.owners[i], reason)
        return built


_LIST_OR_NONE = frozenset({list, type(None)})
_DICT = frozenset({dict})


def _whole(columns: list[list[Any]], owners: Sequence[int]) -> tuple[_Flat, list[int]] | None:
    """The objects of k lists per source, source by source and list by list, when each
    list is absent or holds only objects; else None. `columns[j][s]` is list j of source
    s, `owners[s]` its parent's index. Comprehensions over whole columns, not a step per
    object: on a z-report window that was most of its normalizing. Also returns, per
    object, `s * k + j` (its source and list), for the sections and positions around it.
    The flat's sections and `within` are the caller's to fill."""
    if not all(_LIST_OR_NONE.issuperset(map(type, column)) for column in columns):
        return None
    lists = enumerate(chain.from_iterable(zip(*columns, strict=True)))
    present = [(i, items) for i, items in lists if items]
    objs = [obj for _, items in present for obj in items]
    if not _DICT.issuperset(map(type, objs)):
        return None
    sources = [i for i, items in present for _ in items]
    k = len(columns)
    flat = _Flat(
        objs=objs,
        owners=[owners[i // k] for i in sources],
        within=[-1] * len(objs),
        positions=[p for _, items in present for p in range(len(items))],
    )
    return flat, sources


def _objects(value: Any, what: str, owner: int, errors: Errors) -> list[tuple[int, Any]]:
    """(position, object) of a JSON list of objects; a non-list or non-object is an error
    of the record that owns it. An absent or empty list has none."""
    if value is None or value == []:
        return []
    if type(value) is not list:
        errors.setdefault(owner, f"{what}: expected a list, got {type(value).__name__}")
        return []
    out = []
    for pos, item in enumerate(value):
        if type(item) is not dict:
            errors.setdefault(
                owner, f"{what}[{pos}]: expected an object, got {type(item).__name__}"
            )
            continue
        out.append((pos, item))
    return out
