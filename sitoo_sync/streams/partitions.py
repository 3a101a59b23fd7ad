"""How a stream splits into partitions, each with a cursor of its own: an open family.

A `Partitioning` is a declaration a stream names: what one partition is (the account, a
site, a register, a warehouse ...), where its values come from, and how a partition fills
the stream's path. Values come from the settings (the account, the configured sites) or
from a `Listing`: a paged REST v2 collection read per site. Listed partitions are also
remembered: in the table of the stream that lists them in full every tick (`stored`,
`listed_by`) and in the stream's own cursors, so a tick can start the partitions it knows
while the listing is still being read, and a listing that fails does not forget any.

A new kind is one more declaration here; the engine asks these fields and knows no kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from sitoo_sync.api.client import Api, SitooClient
from sitoo_sync.normalize.cash_registers import CASH_REGISTERS
from sitoo_sync.normalize.site_listing import site_in
from sitoo_sync.normalize.tables import KEY_TEXT_LENGTH, Table
from sitoo_sync.normalize.values import to_int_or_none
from sitoo_sync.settings import Settings
from sitoo_sync.streams.cursors import OffsetPages, WindowContext


class LatestValues(Protocol):
    """The warehouse's latest_values (Warehouse.latest_values)."""

    def __call__(
        self, table: Table, by: str, value: str, order: str, *, every: bool = False
    ) -> dict[Any, Any]: ...


@dataclass(frozen=True)
class Listing:
    """A paged REST v2 collection per site whose items are partitions (`{siteid}` in
    `path`); `value` turns a listed item (and its site) into a partition value, or None
    for an item without a usable id."""

    path: str
    value: Callable[[int, Mapping[str, Any]], str | None]
    pages: OffsetPages = field(default_factory=OffsetPages)

    def item_pages(
        self, client: SitooClient, site: int, *, stream: str
    ) -> Iterator[list[Mapping[str, Any]]]:
        """The items the collection lists for `site`, a page at a time, as they arrive."""
        path = self.path.format(siteid=site)

        def fetch_raw(params: Mapping[str, str | int]) -> Any:
            return client.get_json(Api.V2, path, params, stream=stream, partition=f"site-{site}")

        context = WindowContext(fetch_raw=fetch_raw)
        for window in self.pages.windows(context, None):
            yield [item for item in window.records if isinstance(item, Mapping)]

    def value_pages(self, client: SitooClient, site: int, *, stream: str) -> Iterator[list[str]]:
        """The partition values listed for `site`, a page at a time, as they arrive."""
        for page in self.item_pages(client, site, stream=stream):
            found = (self.value(site, item) for item in page)
            yield [v for v in found if v is not None]


@dataclass(frozen=True)
class Partitioning:
    """What one partition of a stream is, and where the tick finds them."""

    #: Singular noun for summaries and `status` ("register", "site").
    kind: str
    #: Partitions that follow from the settings alone (None: they are listed).
    configured: Callable[[Settings], list[str]] | None = None
    listing: Listing | None = None
    #: A table that holds the partitions a full listing showed, and its column.
    stored: tuple[Table, str] | None = None
    #: The stream that writes `stored` by listing every site in full on each tick: when it
    #: did so in this tick, the table is the listing and need not be read again.
    listed_by: str | None = None
    #: Many partitions, synced concurrently on the tick's pool (SITOO_CONCURRENCY).
    concurrent: bool = False
    #: Always exactly one partition: processes cannot split it between them.
    single: bool = False
    #: The placeholders a partition fills in the stream's path (e.g. `{siteid}`).
    path_params: Callable[[str], Mapping[str, str]] = lambda _partition: {}
    #: The site a partition belongs to, where its value says (None: it does not say).
    site_of: Callable[[str], int | None] = lambda _partition: None
    #: The column of `stored` that names the site whose listing showed a partition, for a
    #: partition whose value does not say its site (a register's GUID).
    stored_site: str | None = None

    def values_from_settings(self, settings: Settings) -> list[str] | None:
        """The partitions the settings name, or None when they must be listed."""
        return None if self.configured is None else self.configured(settings)

    def known(
        self,
        stored_values: Callable[[Table, str], list[Any]],
        latest: LatestValues,
        *,
        synced: Iterable[str] = (),
        sites: frozenset[int] = frozenset(),
    ) -> set[str]:
        """The partitions a tick knows before any listing: those `stored` holds and those
        `synced` (with a cursor); `stored_values` and `latest` are the warehouse's
        distinct_values and latest_values.

        With `sites` (SITOO_SITE_IDS as set), a partition of another site (its value says
        so, or the site `stored_site` holds for it) is left out. `stored` is read once
        either way: with `sites` and a `stored_site`, the read of each stored partition's
        site (`every`: a partition whose site is NULL too) also names the partitions.
        """
        if self.stored is None:
            stored: set[str] = set()
            site_by: dict[str, int] = {}
        elif sites and self.stored_site is not None:
            table, column = self.stored
            found = latest(table, column, self.stored_site, column, every=True)
            stored = {str(k) for k in found if k not in (None, "")}
            site_by = {str(k): int(v) for k, v in found.items() if v is not None}
        else:
            table, column = self.stored
            stored = {str(v) for v in stored_values(table, column) if v not in (None, "")}
            site_by = {}
        known = stored | set(synced)
        if not sites:
            return known
        site_of = self.sites_of(site_by)
        return {p for p in known if (site := site_of(p)) is None or site in sites}

    def stored_sites(
        self, latest: Callable[[Table, str, str, str], dict[Any, Any]]
    ) -> dict[str, int]:
        """Each stored partition's site as `stored_site` holds it ({} where nothing does);
        `latest` is the warehouse's latest_values."""
        if self.stored is None or self.stored_site is None:
            return {}
        table, column = self.stored
        found = latest(table, column, self.stored_site, column)  # one row per partition
        return {str(k): int(v) for k, v in found.items() if k not in (None, "")}

    def sites_of(self, stored: Mapping[str, int]) -> Callable[[str], int | None]:
        """The site of a partition: where its value says, else where `stored` says."""
        return lambda partition: (
            site if (site := self.site_of(partition)) is not None else stored.get(partition)
        )

    def list_site(self, client: SitooClient, site: int, *, stream: str) -> list[str]:
        """The partitions one site lists ([] for a kind that is not listed)."""
        return [v for page in self.list_site_pages(client, site, stream=stream) for v in page]

    def list_site_pages(
        self, client: SitooClient, site: int, *, stream: str
    ) -> Iterator[list[str]]:
        """The partitions one site lists, a page of the listing at a time (none for a kind
        that is not listed)."""
        if self.listing is not None:
            yield from self.listing.value_pages(client, site, stream=stream)

    def list_all(
        self, client: SitooClient, sites: Sequence[int], *, stream: str, concurrency: int = 1
    ) -> list[str]:
        """The partitions every site lists, up to `concurrency` sites at once, in site order;
        any site's failure is raised."""
        workers = min(concurrency, len(sites))
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="sitoo-sites") as pool:
                per_site = list(pool.map(lambda s: self.list_site(client, s, stream=stream), sites))
        else:
            per_site = [self.list_site(client, site, stream=stream) for site in sites]
        return [value for values in per_site for value in values]


def with_every_site(settings: Settings, client: SitooClient) -> Settings:
    """`settings` with SITOO_SITE_IDS filled in: as given, or, when empty, every site the
    account's `/sites.json` lists (its `eshopid`s), read once per tick."""
    if settings.site_ids:
        return settings

    sites = sorted(listed_sites(client, stream="*"))
    return settings.model_copy(update={"site_ids": sites})


def listed_sites(client: SitooClient, *, stream: str) -> set[int]:
    """Every site `/sites.json` lists (its `eshopid`s, every page; digits count); what the
    requests raise, raised."""

    def fetch_raw(params: Mapping[str, str | int]) -> Any:
        return client.get_json(Api.V2, SITE_LIST, params, stream=stream, partition=None)

    return {
        site
        for window in OffsetPages().windows(WindowContext(fetch_raw=fetch_raw), None)
        for item in window.records
        if isinstance(item, Mapping) and (site := to_int_or_none(item.get("eshopid"))) is not None
    }


def _text_id(name: str) -> Callable[[int, Mapping[str, Any]], str | None]:
    """A listed item's `name` as the partition, when it is text a partition can be: not
    empty, at most KEY_TEXT_LENGTH characters (sync_state's partition column; the item's
    own row is rejected for a longer key), without U+0000 (PostgreSQL's text cannot hold
    it). Else the item has no usable id, as one without any."""

    def value(_site: int, item: Mapping[str, Any]) -> str | None:
        found = item.get(name)
        if not isinstance(found, str) or not 0 < len(found) <= KEY_TEXT_LENGTH:
            return None
        return None if "\x00" in found else found

    return value


def _site_and_int_id(name: str) -> Callable[[int, Mapping[str, Any]], str | None]:
    """`{site}/{id}` for a listed item whose integer id is only unique with its site path."""

    def value(site: int, item: Mapping[str, Any]) -> str | None:
        found = to_int_or_none(item.get(name))
        return None if found is None else f"{site}/{found}"

    return value


def _site_path(partition: str) -> Mapping[str, str]:
    return {"siteid": partition}


def _site_and_warehouse_path(partition: str) -> Mapping[str, str]:
    site, _, warehouse = partition.partition("/")
    return {"siteid": site, "warehouseid": warehouse}


#: Every site of the account (the default of SITOO_SITE_IDS).
SITE_LIST = "/sites.json"

#: The whole account: one partition, named by the account number.
ACCOUNT = Partitioning("account", configured=lambda s: [s.resolved_account_id], single=True)

#: One partition per configured site (SITOO_SITE_IDS); fills `{siteid}`.
SITES = Partitioning(
    "site",
    configured=lambda s: [str(site) for site in s.site_ids],
    path_params=_site_path,
    site_of=site_in,
)

#: The `posregister` listing of every site, registered or not.
REGISTER_LISTING = Listing(
    "/sites/{siteid}/cashregisters.json",
    _text_id("registerid"),
    OffsetPages(fixed=(("includenotregistered", "true"),)),
)

#: One partition per cash register of the configured sites (its GUID). The
#: `cash_registers` stream lists them in full; its table remembers them.
REGISTERS = Partitioning(
    "register",
    listing=REGISTER_LISTING,
    stored=(CASH_REGISTERS, "registerid"),
    listed_by="cash_registers",
    concurrent=True,
    stored_site="site_id",
)

#: One partition per warehouse of the configured sites, as `{siteid}/{warehouseid}`;
#: fills `{siteid}` and `{warehouseid}`. Listed live every tick (one request per site).
WAREHOUSES = Partitioning(
    "warehouse",
    listing=Listing("/sites/{siteid}/warehouses.json", _site_and_int_id("warehouseid")),
    concurrent=True,
    path_params=_site_and_warehouse_path,
    site_of=site_in,
)
