"""Runs: one tick of one stream in one process, recorded in `sync_runs`.

`record_run` wraps a stream's tick. When the tick starts it writes the run's row as
"running" (so a process killed mid-tick leaves a row that says so), calls the stream's
`tick_context` hook, and gives the tick its context: the run id (under `RUN_ID_KEY`, which
`partition.sync_partition` passes on to every load, `PartitionLoad.run_id`, so each row the
run writes carries it in `_run_id`) and whatever the hook returned. When the tick ends, the
row is completed from the partitions' results: status, counts, cursors, the first error.

A crashed run: a row still "running" whose process is gone. A process can only judge
processes of its own host, so the rule is: a running row is *interrupted* when it was
written on this host by this very process id (a process ticks a stream once at a time, so
an older running row of its own is dead, even when a restarted container got the same pid)
or by a process id no longer alive here. The next run of the stream on that host marks such
rows "interrupted" in the table, and `status` shows them so at once when it runs on the same
host; a running row of another host stays "running" until a run on that host looks.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sitoo_sync.api.client import Api, SitooClient
from sitoo_sync.errors import SitooSyncError
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.streams.base import Stream, TickSources
from sitoo_sync.warehouse.base import SYNC_RUNS, RunRow, Warehouse
from sitoo_sync.warehouse.retry import retried

if TYPE_CHECKING:
    from sitoo_sync.results import PartitionResult

log = get_logger(__name__)

#: The key under which a run's id travels in the partitions' context to the commit path.
RUN_ID_KEY = "run_id"
RUNNING = "running"
INTERRUPTED = "interrupted"
CRASHED = "the process ended during the run (killed or crashed): its uncommitted work is redone"
HOST = socket.gethostname()


def new_run_id(at: datetime) -> str:
    """A unique run id that sorts by start time: `20261121T231012Z-3f9a1c2b0d4e`."""
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    return True


def is_interrupted(run: RunRow, *, host: str = HOST, pid: int | None = None) -> bool:
    """True when `run` is marked running but its process is gone (see the module's rule)."""
    if run.status != RUNNING or run.host != host or run.pid is None:
        return False
    me = os.getpid() if pid is None else pid
    return run.pid == me or not pid_alive(run.pid)


def shown(run: RunRow) -> RunRow:
    """`run` as a reader should see it: a running row whose process is gone, interrupted."""
    if is_interrupted(run):
        return replace(run, status=INTERRUPTED, error=run.error or CRASHED)
    return run


@dataclass(frozen=True)
class Began:
    """When a stream's run began and the stream's request count then, when that was before
    `record_run`: its partition listing read ahead of the warehouse (listing_ahead.py)."""

    at: datetime
    requests: int


@dataclass
class Run:
    """A run under way: what its row needs at the end, and the context for its partitions."""

    run_id: str
    stream: Stream
    started_at: datetime
    #: The stream's cursors by partition when the run started.
    cursors: Mapping[str, str | None]
    requests_before: int
    context: dict[str, Any] = field(default_factory=dict)


def _write(warehouse: Warehouse, row: Mapping[str, Any], *, new: bool = False) -> None:
    """Insert a new run's row, or replace one (delete and insert by run_id, one transaction).

    Not an upsert: on MySQL/MariaDB, concurrent upserts of new keys (replicas starting the
    same stream together) can deadlock on InnoDB's gap locks; plain inserts of distinct keys
    and a delete of an existing key do not. A write that loses a conflict with another
    writer anyway is run again (warehouse/retry.py); one that still fails is given up with a
    log line: the record of a tick must never fail the tick itself.
    """
    data = rows_to_arrow(SYNC_RUNS, [[row.get(name) for name in SYNC_RUNS.column_names]])

    def write() -> None:
        if not new:
            warehouse.delete_rows(SYNC_RUNS, data.select(["run_id"]), ("run_id",))
        warehouse.insert(SYNC_RUNS, data)

    try:
        retried(warehouse, write, what="run record", stream=row["stream"], run_id=row["run_id"])
    except warehouse.errors as exc:
        log.warning(
            "run_not_recorded",
            run_id=row["run_id"],
            stream=row["stream"],
            error=str(exc).splitlines()[0],
        )


def stream_requests(client: SitooClient, stream: str) -> int:
    """The requests `client` has made for `stream` so far."""
    counts = list(client.partition_requests.items())  # other streams' threads add to it
    return sum(n for (name, _partition), n in counts if name == stream)


def _mark_interrupted(warehouse: Warehouse, stream: str) -> None:
    for run in warehouse.running_runs(stream):
        if is_interrupted(run):
            log.warning(
                "run_interrupted", stream=stream, run_id=run.run_id, started=str(run.started_at)
            )
            row = {name: getattr(run, name) for name in SYNC_RUNS.column_names}
            _write(warehouse, {**row, "status": INTERRUPTED, "error": run.error or CRASHED})


def _tick_context(
    warehouse: Warehouse, client: SitooClient, stream: Stream, now: datetime, concurrency: int
) -> Mapping[str, Any]:
    """The stream's `tick_context`, given the warehouse's queries and the API's GETs,
    `concurrency` at once; {} when it has none."""
    if stream.tick_context is None:
        return {}

    def get(api: Api, path: str) -> Any:
        return client.get_json(api, path, stream=stream.name)

    try:
        sources = TickSources(
            latest=warehouse.latest_values, get=get, now=now, concurrency=concurrency
        )
        return stream.tick_context(sources)
    except SitooSyncError as exc:  # the hook's data is optional: the tick goes on without it
        log.warning("tick_context_failed", stream=stream.name, error=str(exc))
        return {}


def _lowest(cursors: Sequence[str | None]) -> str | None:
    """The cursor furthest behind: epoch cursors compared as numbers, others as text."""
    known = [c for c in cursors if c is not None]
    if not known:
        return None
    if all(c.isdigit() for c in known):
        return min(known, key=int)
    return min(known)


def summary(
    run: Run,
    results: Sequence[PartitionResult],
    *,
    skipped: int,
    requests: int,
    stopped: bool,
    error: str | None = None,
) -> dict[str, Any]:
    """The finished row of `run` from its partitions' results (partition "*": the listing)."""
    parts = [r for r in results if r.partition != "*"]
    statuses = [r.status for r in results]
    if error is not None or (statuses and all(s == "failed" for s in statuses)):
        status = "failed"
    elif "failed" in statuses or (stopped and parts):
        status = "partial"
    elif parts and all(s == "disabled" for s in statuses):
        status = "disabled"
    else:
        status = "ok"
    errors = [r.error for r in results if r.status == "failed" and r.error]
    live = [r for r in parts if r.status != "gone"]
    return {
        "run_id": run.run_id,
        "stream": run.stream.name,
        "started_at": run.started_at,
        "finished_at": datetime.now(UTC),
        "status": status,
        "partitions": len(parts),
        "partitions_moved": sum(r.cursor != run.cursors.get(r.partition) for r in parts),
        "partitions_skipped": skipped,
        "rows_loaded": sum(r.rows for r in results),
        "requests": requests,
        "rejects": sum(r.rejects for r in results),
        # A partition Sitoo deleted keeps its cursor where it was: not the stream's place.
        "cursor_before": _lowest([run.cursors.get(r.partition) for r in live]),
        "cursor_after": _lowest([r.cursor for r in live]),
        "error": error or (errors[0] if errors else None),
        "host": HOST,
        "pid": os.getpid(),
    }


@contextmanager
def record_run(
    warehouse: Warehouse,
    client: SitooClient,
    stream: Stream,
    results: list[PartitionResult],
    skipped: Counter[tuple[str, str]],
    *,
    stop: threading.Event | None = None,
    began: Began | None = None,
    requests: Counter[str] | None = None,
    concurrency: int = 1,
) -> Iterator[Run]:
    """Record the tick of `stream` run inside as one `sync_runs` row (see the module doc).

    `results` and `skipped` are the tick's report, to which the stream's tick appends its
    partitions' results and skips; what it added is this run's. `began`: when the run
    began before this (its listing read ahead); by default, now. `requests`: where the
    run's request count (its row's, partitions' and listings' alike) is also kept, by stream.
    `concurrency`: the stream's `tick_context` requests in flight at once, at most.
    """
    now = datetime.now(UTC) if began is None else began.at
    _mark_interrupted(warehouse, stream.name)
    run = Run(
        run_id=new_run_id(now),
        stream=stream,
        started_at=now,
        cursors=warehouse.get_cursors(stream.name),
        requests_before=stream_requests(client, stream.name) if began is None else began.requests,
    )
    _write(
        warehouse,
        {
            "run_id": run.run_id,
            "stream": stream.name,
            "started_at": now,
            "status": RUNNING,
            "host": HOST,
            "pid": os.getpid(),
        },
        new=True,
    )
    first = len(results)
    skipped_before = sum(n for (name, _), n in skipped.items() if name == stream.name)

    def finish(error: str | None) -> None:
        mine = [r for r in results[first:] if r.stream == stream.name]
        row = summary(
            run,
            mine,
            skipped=sum(n for (name, _), n in skipped.items() if name == stream.name)
            - skipped_before,
            requests=stream_requests(client, stream.name) - run.requests_before,
            stopped=stop is not None and stop.is_set(),
            error=error,
        )
        _write(warehouse, row)
        if requests is not None:
            requests[stream.name] = row["requests"]
        log.info(
            "run_finished",
            stream=stream.name,
            run_id=run.run_id,
            status=row["status"],
            rows=row["rows_loaded"],
            requests=row["requests"],
        )

    try:
        run.context = {
            RUN_ID_KEY: run.run_id,
            **_tick_context(warehouse, client, stream, now, concurrency),
        }
        yield run
    except BaseException as exc:
        finish(str(exc) or type(exc).__name__)  # if the warehouse is gone, it stays "running"
        raise
    finish(None)
