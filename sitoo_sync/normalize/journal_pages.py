"""Journal pages decoded into typed records, and the columnar normalizer for clean ones.

Normalizing was the journal backfill's bottleneck: a page decoded into dicts, then every
receipt, item and payment copied into another dict on its way to Arrow, and every entry's
`data` encoded back to JSON text. Here a page decodes straight into `JournalEntry` structs
(msgspec, in C; not tracked by the garbage collector), whose `data` stays the raw JSON text
the vendor sent (`msgspec.Raw`): it is the `data` column as it is. Only receipts and cash
and staff events decode their `data` once more, into typed structs, and each table's
columns are gathered from the structs and converted by the same column converters the
reference normalizer uses (`columns.convert_column`), so a value means the same either way.

The fast path takes only what it can prove is plain: every key well-formed and unique in
the window, every value converting without a complaint, every field of every object
declared. A bad value or a key seen twice sends the whole window through the reference
normalizer (`journal_entries.normalize_window`), which words the rejects:
`normalize_entries` returns None and `as_dicts` turns the structs back into the dicts that
normalizer reads. An entry whose `data` holds a field nobody declared (the live API may
send more than the documents name) goes that way alone, and the normalizer keeps the field
in `extra`; the window's other entries stay on the fast path.

Staff names follow SITOO_STAFF_NAMES (personal.py). Kept (the default), nothing here
looks for them. Dropped or hashed, they are minimized in each entry's raw `data` text
before anything is read from it, so its tables hold what the text then says; only the
entries that hold a name are rewritten, and only where the name is (the rest of the text
stays byte for byte). The reference normalizer minimizes the same fields in the decoded
entries, so both give the same tables.

A `JournalEntry` reads like the dict it replaces (`entry["dateadded"]`, `entry.get("id")`,
`isinstance(entry, Mapping)`), so cursors, re-read checks and splits need not know.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from itertools import accumulate
from operator import attrgetter
from typing import Any, ClassVar, TypeAlias

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from msgspec import UNSET, Raw, UnsetType

from sitoo_sync.json_text import mended
from sitoo_sync.normalize.columns import ARROW_TYPES, convert_column
from sitoo_sync.normalize.journal_entries import (
    CASH_TYPES,
    ITEM_KEYS,
    JOURNAL_CASH_EVENTS,
    JOURNAL_ENTRIES,
    JOURNAL_RECEIPT_ITEM_DISCOUNTS,
    JOURNAL_RECEIPT_ITEMS,
    JOURNAL_RECEIPT_PAYMENTS,
    JOURNAL_RECEIPTS,
    JOURNAL_STAFF_EVENTS,
    KEY_NAMES,
    KNOWN_TYPES,
    RECEIPT_KEYS,
    STAFF_TYPES,
    ReceiptDays,
    as_bool,
)
from sitoo_sync.normalize.journal_entries import normalize_window as reference_normalize
from sitoo_sync.normalize.personal import PersonalData, staff_names, texts_without_names
from sitoo_sync.normalize.records import EXTRA, NormalizedWindow
from sitoo_sync.normalize.tables import Kind, Table
from sitoo_sync.normalize.values import NO_STORE


class _Record(msgspec.Struct, gc=False):
    """A decoded JSON object that reads like a dict of its JSON names (`_names`: JSON name
    to attribute); an unset field is an absent key."""

    _names: ClassVar[dict[str, str]] = {}

    def get(self, name: str, default: Any = None) -> Any:
        """The field's value, or `default` when the object did not have it."""
        attribute = self._names.get(name)
        value = UNSET if attribute is None else getattr(self, attribute)
        return default if value is UNSET else value

    def __getitem__(self, name: str) -> Any:
        value = self.get(name, UNSET)
        if value is UNSET:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name, UNSET) is not UNSET

    def __iter__(self) -> Iterator[str]:
        return (n for n, a in self._names.items() if getattr(self, a) is not UNSET)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def keys(self) -> list[str]:
        """The fields the object had."""
        return list(self)

    def items(self) -> list[tuple[str, Any]]:
        """(field, value) of the fields the object had."""
        return [(n, self[n]) for n in self]

    def values(self) -> list[Any]:
        """The values of the fields the object had."""
        return [self[n] for n in self]

    @classmethod
    def values_of(cls, records: Sequence[Any], name: str) -> list[Any] | None:
        """The field `name` of every record (UNSET where absent) when all are of this type,
        else None: one pass in C instead of a `get` per record (a page's cursor times cost
        ~1 ms that way, in the thread that holds the GIL for everyone)."""
        attribute = cls._names.get(name)
        if attribute is None or set(map(type, records)) != {cls}:
            return None
        return list(map(attrgetter(attribute), records))


def _reads_like_a_dict(cls: type[_Record]) -> None:
    cls._names = dict(zip(cls.__struct_encode_fields__, cls.__struct_fields__, strict=True))
    Mapping.register(cls)


class JournalEntry(_Record, forbid_unknown_fields=True, gc=False):
    """One journal entry as sent: the envelope typed loosely (the converters judge the
    values), `data` kept as its raw JSON text."""

    data: Raw | UnsetType = UNSET
    dateadded: Any = UNSET
    datecreated: Any = UNSET
    id: Any = UNSET
    ispractice: Any = UNSET
    registerid: Any = UNSET
    registerkey: Any = UNSET
    type: Any = UNSET


class JournalPage(_Record, gc=False):
    """A page of `/journal-entries`: its entries and the token that continues it. Other
    fields of the envelope are not read by anyone, so they are not kept."""

    entries: list[JournalEntry] | UnsetType | None = msgspec.field(default=UNSET, name="items")
    next: Any = UNSET


_reads_like_a_dict(JournalEntry)
_reads_like_a_dict(JournalPage)

_OPTIONAL: Any = None  # a plain field: absent and null read the same, as `dict.get` does


class _Strict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """An object whose every field is declared: anything more sends it the slow way."""


class Discount(_Strict):
    """A receipt item's discount."""

    discountname: Any = _OPTIONAL
    moneydiscount: Any = _OPTIONAL


class Item(_Strict):
    """A receipt's item (row)."""

    additionaldata: Raw | UnsetType = UNSET
    decimalquantitytotal: Any = _OPTIONAL
    decimalunitquantity: Any = _OPTIONAL
    discounts: list[Discount] | None = None
    moneyrowprice: Any = _OPTIONAL
    name: Any = _OPTIONAL
    quantity: Any = _OPTIONAL
    sku: Any = _OPTIONAL
    vatvalue: Any = _OPTIONAL


class Payment(_Strict):
    """A receipt's payment."""

    moneyamount: Any = _OPTIONAL
    name: Any = _OPTIONAL


class ReceiptData(_Strict):
    """A `receipt` entry's data: the fields journal_receipts and its child tables read."""

    additionaldata: Raw | UnsetType = UNSET
    comment: Any = _OPTIONAL
    currencycode: Any = _OPTIONAL
    isrefund: Any = _OPTIONAL
    items: list[Item] | None = None
    moneytotal: Any = _OPTIONAL
    payments: list[Payment] | None = None


class CashData(_Strict):
    """A cash event's data (cash-start, -bank, -bank-final, -counted, -petty)."""

    currencycode: Any = _OPTIONAL
    moneycash: Any = _OPTIONAL
    staff: Any = _OPTIONAL
    staffuserid: Any = _OPTIONAL


class StaffData(_Strict):
    """A staff event's data (login, logout, open-cash-drawer)."""

    staff: Any = _OPTIONAL
    staffuserid: Any = _OPTIONAL


def _lifted_struct(name: str, keys: Mapping[str, str]) -> type[msgspec.Struct]:
    """A struct of the additionaldata keys that become columns (column: vendor's key), as
    journal_entries.py declares them; the object's other keys stay in its JSON column."""
    fields = [(column, Any, msgspec.field(default=None, name=key)) for column, key in keys.items()]
    return msgspec.defstruct(name, fields, gc=False)


ReceiptLifted = _lifted_struct("ReceiptLifted", RECEIPT_KEYS)
ItemLifted = _lifted_struct("ItemLifted", ITEM_KEYS)


_PAGE = msgspec.json.Decoder(JournalPage, float_hook=Decimal)
_DICTS = msgspec.json.Decoder(float_hook=Decimal)
_RECEIPT = msgspec.json.Decoder(ReceiptData, float_hook=Decimal)
_CASH = msgspec.json.Decoder(CashData, float_hook=Decimal)
_STAFF = msgspec.json.Decoder(StaffData, float_hook=Decimal)
_RECEIPT_LIFTED: msgspec.json.Decoder[Any] = msgspec.json.Decoder(ReceiptLifted, float_hook=Decimal)
_ITEM_LIFTED: msgspec.json.Decoder[Any] = msgspec.json.Decoder(ItemLifted, float_hook=Decimal)
_NULL = b"null"
_NULL_TEXT = pa.scalar(None, pa.string())
# Typed scalars for comparisons: a bare str makes pyarrow infer its type, which tries an
# import on every call (3 % of normalizing a page).
_NULL_WORD = pa.scalar("null", pa.string())
_TRUE_WORD = pa.scalar("true", pa.string())
_BOOL_TEXTS = frozenset({"true", "false", None})
#: A typed scalar: a bare Python bool makes pyarrow infer its type, which tries an import
#: (46 µs a call against 4 µs).
_FALSE = pa.scalar(False)
_ZERO = pa.scalar(Decimal(0), pa.decimal128(18, 2))
_WIDE = pa.decimal128(22, 3)
_QUANTITY = pa.decimal128(18, 3)
#: The entry types whose `data` becomes typed rows, and the struct it decodes into.
_DATA: dict[str, msgspec.json.Decoder[Any]] = {
    "receipt": _RECEIPT,
    **dict.fromkeys(CASH_TYPES, _CASH),
    **dict.fromkeys(STAFF_TYPES, _STAFF),
}


def decode_page(content: bytes) -> Any:
    """A journal page: typed entries when every entry has only the declared fields, else
    the plain decoded JSON (dicts), as any other endpoint's. Invalid JSON raises ValueError.

    A page whose only fault is text no UTF-8 can hold (`mended`) is read with U+FFFD in
    its place: refused whole, it would be asked again and refused on every tick, and the
    register's journal would stop there."""
    try:
        return _decoded(content)
    except msgspec.DecodeError:
        repaired = mended(content)
        if repaired == content:
            raise
        return _decoded(repaired)


def _decoded(content: bytes) -> Any:
    try:
        return _PAGE.decode(content)
    except msgspec.ValidationError:
        return _DICTS.decode(content)


def _texts(raws: list[Raw | UnsetType | None]) -> pa.Array:
    """Raw JSON values as the texts of a JSON column, None for an absent or null one: their
    bytes joined into one Arrow buffer, with the UTF-8 checked as decoding would (1,000
    texts in ~0.15 ms against 0.36 ms decoded one by one in Python)."""
    present: list[Any] = raws
    if UNSET in raws or None in raws:
        present = [_NULL if r is None or r is UNSET else r for r in raws]
    ends = pa.array(list(accumulate(map(len, present), initial=0)), pa.int32())
    data = pa.py_buffer(b"".join(present))
    array = pa.StringArray.from_buffers(len(present), ends.buffers()[1], data)
    array.validate(full=True)  # raises ArrowInvalid on bytes that are not UTF-8
    null = pc.equal(array, _NULL_WORD)
    return pc.if_else(null, _NULL_TEXT, array) if null.true_count else array


def _bools(values: list[Any]) -> Values:
    """`as_bool` of each value: in Arrow when every one is "true", "false" or None (what
    the vendor sends), value by value otherwise."""
    try:
        plain = set(values) <= _BOOL_TEXTS
    except TypeError:  # an object or a list: not hashable, and not a boolean either
        plain = False
    if plain:
        return pc.equal(pa.array(values, pa.string()), _TRUE_WORD)
    return [as_bool(v) for v in values]


def as_dicts(entries: Sequence[Any]) -> list[Any]:
    """Entries as the reference normalizer reads them: typed ones back into plain dicts
    (their `data` decoded as any JSON would be); others as they are."""
    out: list[Any] = []
    for entry in entries:
        if type(entry) is not JournalEntry:
            out.append(entry)
            continue
        record = dict(entry.items())
        if "data" in record:
            record["data"] = _data(record["data"])
        out.append(record)
    return out


def _data(raw: Raw) -> Any:
    """An entry's raw `data` decoded; bytes in it that are not UTF-8 (a typed page checks
    none inside a raw value) read as U+FFFD, as `decode_page` reads them elsewhere."""
    try:
        return _DICTS.decode(raw)
    except msgspec.DecodeError:
        return _DICTS.decode(mended(bytes(raw)))


class _Unclean(Exception):
    """Something in the window the columnar path does not take (see the module doc)."""


def _without_names(entries: Sequence[JournalEntry], names: PersonalData) -> list[JournalEntry]:
    """The entries with the staff names in their `data` minimized as `names` says: a new
    entry where `data` holds one, the same entry elsewhere. A `data` that is not JSON where
    a name is is _Unclean (the reference normalizer words why)."""
    texts = [_NULL if e.data is UNSET else e.data for e in entries]
    try:
        minimized = texts_without_names(texts, names)
    except ValueError as exc:  # not UTF-8, or not JSON
        raise _Unclean("staff name") from exc
    if minimized is texts:
        return list(entries)
    return [
        entry if new is old else msgspec.structs.replace(entry, data=Raw(new))
        for entry, old, new in zip(entries, texts, minimized, strict=True)
    ]


#: A column's values: raw JSON values to convert, or an array typed already.
Values: TypeAlias = list[Any] | pa.Array


def _typed(table: Table, columns: Mapping[str, Values]) -> pa.Table:
    """`table` from its columns: raw values are converted by the reference normalizer's
    converters (JSON columns arrive as text); `extra` is empty, every field was declared.
    Raises _Unclean when a value does not convert cleanly (that normalizer words why)."""
    arrays: list[pa.Array] = []
    rows = len(next(iter(columns.values())))
    for column in table.columns:
        if column.name == EXTRA:
            arrays.append(pa.nulls(rows, pa.string()))
            continue
        values = columns[column.name]
        if isinstance(values, pa.Array):
            array = values
        elif column.kind is Kind.JSON:
            array = pa.array(values, pa.string())
        elif column.nullable and rows and values[0] is None and values.count(None) == rows:
            # A field no row has: nulls (1 us) rather than a conversion (20 us). Counted
            # only when the first row has none: counting a full column costs ~10 us.
            array = pa.nulls(rows, ARROW_TYPES[column.kind])
        else:
            array, errors = convert_column(column, values)
            if errors:
                raise _Unclean(column.name)
        if column.kind is Kind.JSON and not column.nullable and array.null_count:
            raise _Unclean(column.name)  # a required JSON value missing: the reference rejects
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=list(table.column_names))


def _body(raw: Raw | UnsetType) -> Raw | bytes:
    """An object to decode into a struct (an entry's data, an additionaldata): an absent or
    null one reads as `{}`, every field unset."""
    if raw is UNSET or (len(raw) == len(_NULL) and bytes(raw) == _NULL):
        return b"{}"
    return raw


def _unset_as_none(values: list[Any]) -> list[Any]:
    return [None if v is UNSET else v for v in values] if UNSET in values else values


def _flips_signs(receipts: pa.Table) -> pa.Array:
    """`journal_entries.flips_signs` of each receipt: a refund whose total is not negative."""
    refund = pc.fill_null(receipts.column("isrefund").combine_chunks(), _FALSE)
    signed = pc.fill_null(pc.less(receipts.column("moneytotal").combine_chunks(), _ZERO), _FALSE)
    return pc.and_(refund, pc.invert(signed))


def _signed(table: pa.Table, refund: pa.Array, **unsigned: str) -> pa.Table:
    """`table` with each signed column (keyword) made from its unsigned one (value), negated
    where the row's receipt is a refund: what converting `negated(text)` gives."""
    for name, source in unsigned.items():
        amounts = table.column(source).combine_chunks()
        signed = pc.if_else(refund, pc.negate(amounts), amounts)
        table = table.set_column(table.schema.get_field_index(name), name, signed)
    return table


def _with_units(items: pa.Table) -> pa.Table:
    """`items` with quantity_signed holding each item's units, unsigned (what
    `journal_entries.units` reads): its quantity when it has one, else its
    decimalunitquantity. Raises ArrowInvalid when a count does not fit DECIMAL(18,3) (the
    reference normalizer rejects it)."""
    count = items.column("quantity").combine_chunks()
    units = items.column("decimalunitquantity").combine_chunks()
    if count.null_count < len(count):
        # Via DECIMAL(22,3), which holds any int64: a count DECIMAL(18,3) cannot hold raises
        # (and the two casts cost half what going through DECIMAL(19,0) does).
        counted = pc.cast(pc.cast(count, _WIDE), _QUANTITY)
        units = counted if not count.null_count else pc.coalesce(counted, units)
    return items.set_column(
        items.schema.get_field_index("quantity_signed"), "quantity_signed", units
    )


def normalize_entries(
    entries: Sequence[JournalEntry],
    names: PersonalData | None = None,
    context: Mapping[str, Any] | None = None,
) -> NormalizedWindow | None:
    """The window's typed tables, exactly as `journal_entries.normalize_window` makes them,
    or None when something in it needs the reference normalizer whole (see the module doc).
    `names`: how staff names are minimized (`personal.staff_names`; None: kept); `context`:
    the window's normalizer context (the site zones a receipt without its own zone takes).

    An entry whose `data` has a field no struct declares (the vendor sends more than we
    know) is normalized by the reference normalizer alone, which keeps that field in
    `extra`; the window's other entries stay on the columnar path.
    """
    try:
        if names is not None:  # (the reference normalizer below gets them minimized too)
            entries = _without_names(entries, names)
        keys = _check_keys(entries)
        bodies, odd = _bodies(entries)
        clean = [e for i, e in enumerate(entries) if i not in odd] if odd else entries
        kept = [b for i, b in enumerate(bodies) if i not in odd] if odd else bodies
        days = ReceiptDays(context)
        tables, notes = _tables(clean, kept, days)
    except (_Unclean, msgspec.DecodeError, OverflowError, pa.ArrowInvalid):
        return None
    parent_keys = tables[JOURNAL_ENTRIES.name].select(list(KEY_NAMES))
    if not odd:  # the window's keys are the ones checked
        return NormalizedWindow(tables=tables, parent_keys=parent_keys, notes=notes, key_set=keys)
    fast = NormalizedWindow(tables=tables, parent_keys=parent_keys, notes=notes)
    rest = reference_normalize(as_dicts([entries[i] for i in sorted(odd)]), days=days)
    return NormalizedWindow.concat([fast, rest])  # (its keys are read from parent_keys)


def _check_keys(entries: Sequence[JournalEntry]) -> set[tuple[str, int]]:
    """The window's keys, when every one is well-formed and unique in it and every type a
    string; else a reject or a key twice, which the reference normalizer handles."""
    registerids = [e.registerid for e in entries]
    ids = [e.id for e in entries]
    if (
        not all(type(r) is str and r for r in registerids)
        or not all(type(i) is int for i in ids)
        or not all(type(e.type) is str for e in entries)
    ):
        raise _Unclean("key")
    keys = set(zip(registerids, ids, strict=True))  # (only now hashable for sure)
    if len(keys) != len(entries):
        raise _Unclean("key twice")
    return keys


def _bodies(entries: Sequence[JournalEntry]) -> tuple[list[Any], set[int]]:
    """Each receipt's, cash and staff event's `data` as its struct (None for other entries),
    and the positions of those whose `data` has a field no struct declares."""
    bodies: list[Any] = []
    odd: set[int] = set()
    for index, entry in enumerate(entries):
        decoder = _DATA.get(entry.type)
        body = None
        if decoder is not None:
            try:
                body = decoder.decode(_body(entry.data))
            except msgspec.ValidationError as exc:
                if "unknown field" not in str(exc):
                    raise  # a shape the structs cannot hold: the whole window goes the slow way
                odd.add(index)
        bodies.append(body)
    return bodies, odd


def _tables(
    entries: Sequence[JournalEntry], bodies: Sequence[Any], days: ReceiptDays
) -> tuple[dict[str, pa.Table], Counter[str]]:
    """Every journal table of the window and its notes (`days` dates the receipts); raises
    when it is not clean."""
    registerids = [e.registerid for e in entries]
    ids = [e.id for e in entries]
    kinds = [e.type for e in entries]
    created = _unset_as_none([e.datecreated for e in entries])
    envelope = _typed(
        JOURNAL_ENTRIES,
        {
            "registerid": pa.array(registerids, pa.string()),
            "id": pa.array(ids, pa.int64()),
            "type": pa.array(kinds, pa.string()),
            "datecreated": created,
            "dateadded": _unset_as_none([e.dateadded for e in entries]),
            "ispractice": _unset_as_none([e.ispractice for e in entries]),
            "registerkey": _unset_as_none([e.registerkey for e in entries]),
            "data": _texts([e.data for e in entries]),
        },
    )
    notes: Counter[str] = Counter(f"unknown entry type {k}" for k in kinds if k not in KNOWN_TYPES)
    at: dict[str, list[int]] = {"receipt": [], "cash": [], "staff": []}
    for index, kind in enumerate(kinds):
        if kind == "receipt":
            at["receipt"].append(index)
        elif kind in CASH_TYPES:
            at["cash"].append(index)
        elif kind in STAFF_TYPES:
            at["staff"].append(index)
    made = at["receipt"]
    receipts = _receipt_tables(
        [bodies[i] for i in made],
        made,
        envelope,
        ([created[i] for i in made], [registerids[i] for i in made]),
        days,
    )
    tables = {JOURNAL_ENTRIES.name: envelope, **receipts}
    for table, rows, decoder in (
        (JOURNAL_CASH_EVENTS, at["cash"], _CASH),
        (JOURNAL_STAFF_EVENTS, at["staff"], _STAFF),
    ):
        events = [bodies[i] for i in rows]
        columns: dict[str, Values] = _event_columns(envelope, rows)
        for name in decoder.type.__struct_fields__:
            columns[name] = [getattr(e, name) for e in events]
        tables[table.name] = _typed(table, columns)
    return tables, notes


def _event_columns(envelope: pa.Table, rows: list[int]) -> dict[str, Values]:
    """The key and event columns of the entries at `rows`, taken from the typed envelope."""
    names = ["registerid", "id", "type", "ispractice", "datecreated"]
    taken = envelope.select(names).take(pa.array(rows, pa.int64()))  # not the `data` texts
    return {name: taken.column(name).combine_chunks() for name in names}


def _receipt_tables(
    data: list[ReceiptData],
    at: list[int],
    envelope: pa.Table,
    made: tuple[list[Any], list[str]],
    days: ReceiptDays,
) -> dict[str, pa.Table]:
    """The receipt tables, from the receipts' `data` (the entries at `at`, created when
    and by the registers `made` says, and dated by `days`)."""
    stamps, registers = made
    lifted = [_RECEIPT_LIFTED.decode(_body(d.additionaldata)) for d in data]
    head = _event_columns(envelope, at)
    receipts = _typed(
        JOURNAL_RECEIPTS,
        {
            **head,
            "business_date": list(map(days, stamps, [x.timezone for x in lifted], registers)),
            "currencycode": [d.currencycode for d in data],
            "isrefund": [d.isrefund for d in data],
            "comment": [d.comment for d in data],
            **{
                name: [getattr(x, name) for x in lifted] for name in ReceiptLifted.__struct_fields__
            },
            "store_id": [
                NO_STORE if x.store_id is None or x.store_id == "" else x.store_id for x in lifted
            ],
            "moneytotal": [d.moneytotal for d in data],
            "additionaldata": _texts([d.additionaldata for d in data]),
            "moneytotal_signed": pa.nulls(len(at), pa.decimal128(18, 2)),
        },
    )
    refund = _flips_signs(receipts)
    receipts = _signed(receipts, refund, moneytotal_signed="moneytotal")
    # One row per item (and per discount, per payment): which receipt, where in its list.
    # (Their fields are read by unpacking the tuples whole: `*_, item` builds a list per
    # row, 7x the cost, ~0.5 ms of a 1,000-entry page.)
    items = [(r, p, item) for r, d in enumerate(data) for p, item in enumerate(d.items or ())]
    item_lifted = [_ITEM_LIFTED.decode(_body(item.additionaldata)) for _, _, item in items]
    discounts = [(r, p, q, d) for r, p, item in items for q, d in enumerate(item.discounts or ())]
    payments = [(r, p, pay) for r, d in enumerate(data) for p, pay in enumerate(d.payments or ())]
    keys = receipts.select(["registerid", "id", "currencycode"])

    def of_receipt(rows: list[int]) -> tuple[dict[str, Values], pa.Array]:
        """registerid, id and currencycode of each row's receipt, and its refund flag."""
        index = pa.array(rows, pa.int64())
        taken = keys.take(index)
        columns: dict[str, Values] = {
            n: taken.column(n).combine_chunks() for n in ("registerid", "id", "currencycode")
        }
        return columns, refund.take(index)

    item_keys, item_refund = of_receipt([r for r, _, _ in items])
    item_table = _typed(
        JOURNAL_RECEIPT_ITEMS,
        {
            **item_keys,
            "position": [p for _, p, _ in items],
            **{
                name: [getattr(x, name) for x in item_lifted]
                for name in ItemLifted.__struct_fields__
            },
            "sku": [i.sku for _, _, i in items],
            "name": [i.name for _, _, i in items],
            "quantity": [i.quantity for _, _, i in items],
            "decimalunitquantity": [i.decimalunitquantity for _, _, i in items],
            "decimalquantitytotal": [i.decimalquantitytotal for _, _, i in items],
            "vatvalue": [i.vatvalue for _, _, i in items],
            "moneyrowprice": [i.moneyrowprice for _, _, i in items],
            "additionaldata": _texts([i.additionaldata for _, _, i in items]),
            "isdelivered": _bools([x.delivered for x in item_lifted]),
            "moneyrowprice_signed": pa.nulls(len(items), pa.decimal128(18, 2)),
            "quantity_signed": pa.nulls(len(items), pa.decimal128(18, 3)),
        },
    )
    item_table = _signed(
        _with_units(item_table),
        item_refund,
        moneyrowprice_signed="moneyrowprice",
        quantity_signed="quantity_signed",
    )
    discount_keys, _ = of_receipt([r for r, _, _, _ in discounts])
    payment_keys, payment_refund = of_receipt([r for r, _, _ in payments])
    payment_table = _typed(
        JOURNAL_RECEIPT_PAYMENTS,
        {
            **payment_keys,
            "position": [p for _, p, _ in payments],
            "name": [pay.name for _, _, pay in payments],
            "moneyamount": [pay.moneyamount for _, _, pay in payments],
            "moneyamount_signed": pa.nulls(len(payments), pa.decimal128(18, 2)),
        },
    )
    payment_table = _signed(payment_table, payment_refund, moneyamount_signed="moneyamount")
    return {
        JOURNAL_RECEIPTS.name: receipts,
        JOURNAL_RECEIPT_ITEMS.name: item_table,
        JOURNAL_RECEIPT_ITEM_DISCOUNTS.name: _typed(
            JOURNAL_RECEIPT_ITEM_DISCOUNTS,
            {
                **discount_keys,
                "item_position": [p for _, p, _, _ in discounts],
                "position": [q for _, _, q, _ in discounts],
                "discountname": [d.discountname for _, _, _, d in discounts],
                "moneydiscount": [d.moneydiscount for _, _, _, d in discounts],
            },
        ),
        JOURNAL_RECEIPT_PAYMENTS.name: payment_table,
    }


#: Entries normalized in one call at most when several partitions' windows wait together:
#: a call's fixed cost (~1.8 ms, some 60 Arrow calls) is spread well before this, and the
#: windows' slices share the call's buffers until the last of them commits.
MAX_JOINED_ENTRIES = 2_000


def normalize_windows(
    windows: Sequence[tuple[list[Any], Mapping[str, Any] | None]],
) -> list[NormalizedWindow]:
    """Several partitions' windows (records, context) normalized together, one result each,
    the same as `normalize_window` gives each alone.

    A window of ~70 entries costs 2.2 ms alone and 0.6 ms in a call with seven others: most
    of a small window's cost is the call's (converting each column, each take and cast),
    paid once per call. Windows are joined up to `MAX_JOINED_ENTRIES` entries a call.
    """
    out: list[NormalizedWindow] = []
    chunk: list[tuple[list[Any], Mapping[str, Any] | None]] = []
    entries = 0
    for window in windows:
        if chunk and entries + len(window[0]) > MAX_JOINED_ENTRIES:
            out += _normalize_joined(chunk)
            chunk, entries = [], 0
        chunk.append(window)
        entries += len(window[0])
    return out + _normalize_joined(chunk) if chunk else out


def _normalize_joined(
    windows: Sequence[tuple[list[Any], Mapping[str, Any] | None]],
) -> list[NormalizedWindow]:
    """The windows normalized in one call when each is clean typed entries of one register
    and no two share a register: each table's rows then come out window by window, and each
    result is its window's slice of them. Anything else is normalized window by window."""
    registers = [r for records, _ in windows if (r := _register_of(records)) is not None]
    names = {staff_names(context) for _, context in windows}
    if len(windows) < 2 or len(set(registers)) < len(windows) or len(names) > 1:
        return [normalize_window(records, context) for records, context in windows]
    joined = [entry for records, _ in windows for entry in records]
    try:
        if (minimize := names.pop()) is not None:
            joined = _without_names(joined, minimize)
        _check_keys(joined)
        bodies, odd = _bodies(joined)
        if odd:  # an entry with an undeclared field is normalized apart, out of order
            raise _Unclean("undeclared field")
        days = ReceiptDays(registers=dict(zip(registers, (c for _, c in windows), strict=True)))
        tables, _ = _tables(joined, bodies, days)
    except (_Unclean, msgspec.DecodeError, OverflowError, pa.ArrowInvalid):
        return [normalize_window(records, context) for records, context in windows]
    return _split(tables, [records for records, _ in windows], registers)


def _register_of(records: Sequence[Any]) -> str | None:
    """The one register of a window of typed entries, else None (not joinable)."""
    if not records or any(type(e) is not JournalEntry for e in records):
        return None
    register = records[0].registerid
    if type(register) is not str or any(e.registerid != register for e in records):
        return None
    return register


def _split(
    tables: dict[str, pa.Table],
    windows: Sequence[Sequence[JournalEntry]],
    registers: Sequence[str],
) -> list[NormalizedWindow]:
    """The joined tables cut back into their windows (each a run of one register's rows).

    The slices share the joined buffers, so each window is charged its rows' share of them
    (`NormalizedWindow.size`), and the shares add up to what the buffers hold.
    """
    total = sum(t.get_total_buffer_size() for t in tables.values())
    rows = sum(t.num_rows for t in tables.values())
    starts = dict.fromkeys(tables, 0)
    counts: dict[str, dict[str, int]] = {}
    for name, table in tables.items():
        values, numbers = pc.value_counts(table.column("registerid")).flatten()
        counts[name] = dict(zip(values.to_pylist(), numbers.to_pylist(), strict=True))
    out: list[NormalizedWindow] = []
    for entries, register in zip(windows, registers, strict=True):
        mine: dict[str, pa.Table] = {}
        for name, table in tables.items():
            count = counts[name].get(register, 0)
            mine[name] = table.slice(starts[name], count)
            starts[name] += count
        window_rows = sum(t.num_rows for t in mine.values())
        out.append(
            NormalizedWindow(
                tables=mine,
                parent_keys=mine[JOURNAL_ENTRIES.name].select(list(KEY_NAMES)),
                notes=Counter(
                    f"unknown entry type {e.type}" for e in entries if e.type not in KNOWN_TYPES
                ),
                key_set={(register, e.id) for e in entries},
                size=total * window_rows // max(rows, 1),
            )
        )
    return out


def normalize_window(
    records: Iterable[Any], context: Mapping[str, Any] | None = None
) -> NormalizedWindow:
    """Normalize one window of journal entries: the columnar path when every record is a
    typed entry and the window is clean, else the reference normalizer (same tables)."""
    records = records if isinstance(records, list) else list(records)
    if records and set(map(type, records)) == {JournalEntry}:
        fast = normalize_entries(records, staff_names(context), context)
        if fast is not None:
            return fast
    return reference_normalize(as_dicts(records), context)
