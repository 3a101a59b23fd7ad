"""The sites and the first stream's partition listing, read while the warehouse gets ready.

A tick's first request used to wait for the warehouse: opening it, creating or checking
every table and view, and the run's row (45-55 ms on a DuckDB file that exists, 110-150 ms
on a fresh one, 94-150 ms for a fresh PostgreSQL schema). On a first tick nothing else can
start before the partition listing answers (the registers are not known yet), so that wait
added to the tick whole: a 201-register backfill at 100 ms a request and concurrency 16
sent its first journal request 220-260 ms after the tick began, the listing's round trip
after the warehouse's.

Here the listing begins with the tick, each site on a thread of its own under the tick's
request slots (one request at a time a site, as when the stream lists its sites itself),
and each page waits in its site's queue until the stream reads it (`pages`), which it does
where it read the listing's answers before: a page's new partitions start as the page is
read, and a failed listing is raised there. Only the first stream's listing is read ahead,
and only when its partitions are listed and synced concurrently: later streams start after
the warehouse is ready anyway. With SITOO_SITE_IDS empty, the account's sites are listed
the same way first (`settings`).

What the read ahead changes besides: its requests go out before the run's row is written
(the row starts when they did and counts them, `began`); and when the tick ends without
reading the listing (the warehouse failed, or a stop came), no listing sends a request
after that, but a request already on its way is not waited for: the threads are daemons,
so a listing being throttled (Retry-After) never holds back the warehouse's error or the
process's exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from queue import SimpleQueue
from typing import Any

from sitoo_sync.api.client import SitooClient
from sitoo_sync.runs import Began, stream_requests
from sitoo_sync.settings import Settings
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.partitions import with_every_site

_END = object()


@dataclass(frozen=True)
class _Failed:
    """The listing of a site failed: the stream's reading of it raises `error`."""

    error: BaseException


class ListingAhead:
    """The tick's sites and its first stream's listing, read ahead of the warehouse."""

    def __init__(self, stream: Stream | None, stop: threading.Event | None) -> None:
        self._stream = stream
        self._stop = stop
        self._queues: dict[int, SimpleQueue[Any]] = {}
        self._closed = threading.Event()
        self._sites: Future[Settings] | None = None
        self._settings: Settings | None = None
        self._began: Began | None = None

    @classmethod
    def start(
        cls,
        settings: Settings,
        client: SitooClient,
        streams: Sequence[Stream],
        *,
        slots: AbstractContextManager[Any],
        stop: threading.Event | None = None,
    ) -> ListingAhead:
        """Start reading when the first stream's partitions are listed and synced
        concurrently; otherwise nothing is read ahead and `settings` lists the sites when
        asked, as before."""
        first = streams[0] if streams else None
        if first is None or not _listed_concurrently(first) or _set(stop):
            ahead = cls(None, stop)
            ahead._settings = settings
            return ahead
        ahead = cls(first, stop)
        ahead._began = Began(datetime.now(UTC), stream_requests(client, first.name))
        sites: Future[Settings] = Future()
        ahead._sites = sites
        _daemon(ahead._read, settings, client, slots, sites)
        return ahead

    def settings(self, client: SitooClient) -> Settings:
        """The tick's settings with SITOO_SITE_IDS filled in (`with_every_site`); raises
        what listing the sites raised."""
        if self._sites is not None:
            return self._sites.result()
        assert self._settings is not None
        return with_every_site(self._settings, client)

    def pages(self, stream: str, site: int) -> Iterator[list[str]] | None:
        """The listing of `site` for `stream`, a page at a time as it arrives, when it is
        being read ahead (once a tick), else None. A failed listing raises here."""
        if self._stream is None or stream != self._stream.name:
            return None
        queue = self._queues.pop(site, None)
        return None if queue is None else _drained(queue)

    def began(self, stream: str) -> Began | None:
        """When `stream`'s run began, its listing read ahead (its run's row starts then and
        counts the listing's requests), or None when it was not read ahead."""
        if self._stream is None or stream != self._stream.name:
            return None
        return self._began

    def close(self) -> None:
        """Stop reading: no listing the tick did not read sends another request."""
        self._closed.set()

    def _ended(self) -> bool:
        return self._closed.is_set() or _set(self._stop)

    def _read(
        self,
        settings: Settings,
        client: SitooClient,
        slots: AbstractContextManager[Any],
        sites: Future[Settings],
    ) -> None:
        try:
            settings = with_every_site(settings, client)
        except BaseException as exc:  # raised where the tick asks for the settings
            sites.set_exception(exc)
            return
        assert self._stream is not None
        # Every queue exists before the settings are handed over: the stream asks for a
        # site's pages only after it has them.
        queues = {site: SimpleQueue[Any]() for site in settings.site_ids}
        self._queues.update(queues)
        for site, queue in queues.items():
            _daemon(self._list, client, self._stream, site, slots, queue)
        sites.set_result(settings)

    def _list(
        self,
        client: SitooClient,
        stream: Stream,
        site: int,
        slots: AbstractContextManager[Any],
        queue: SimpleQueue[Any],
    ) -> None:
        try:
            with slots:
                pages = stream.partitions.list_site_pages(client, site, stream=stream.name)
                while not self._ended() and (page := next(pages, None)) is not None:
                    queue.put(page)
        except BaseException as exc:  # raised where the stream reads the listing
            queue.put(_Failed(exc))
        else:
            queue.put(_END)


def _daemon(target: Callable[..., None], *args: Any) -> None:
    """Run `target(*args)` on a daemon thread: nobody waits for it at the tick's end."""
    threading.Thread(target=target, args=args, name="sitoo-listing", daemon=True).start()


def _set(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _listed_concurrently(stream: Stream) -> bool:
    kind = stream.partitions
    return kind.concurrent and kind.configured is None and kind.listing is not None


def _drained(queue: SimpleQueue[Any]) -> Iterator[list[str]]:
    while (item := queue.get()) is not _END:
        if isinstance(item, _Failed):
            raise item.error
        yield item
