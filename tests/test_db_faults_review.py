"""Adversarial review: the service and `run --once` against a server that misbehaves.

The shared PostgreSQL and MariaDB servers are never stopped: a proxy of the test's own
(tests/db_proxy.py) stands between the sync and the server and cuts connections
mid-statement, mid-COPY and mid-commit, hangs, refuses connections or is slow; the sync's
own sessions are also ended on the server (`pg_terminate_backend`, `KILL`). Each test
checks that no tick waits without a bound, that the next tick recovers with the same rows
as a clean run, that nothing stays connected or locked, and that what is logged is one
line without a traceback or the password.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from sitoo_sync.errors import WarehouseError
from sitoo_sync.service import Service
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.warehouse import open_warehouse, sqla
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from sitoo_sync.warehouse.sqla import make_engine
from tests.db_proxy import CutOn, DbProxy
from tests.support import settings_for
from tests.targets import Target, target_for

SERVERS = ["postgres", "mysql"]
#: A password the PostgreSQL test server (trust authentication) never asks for, so it must
#: never be seen in what the sync logs.
PASSWORD = "pw-never-logged-4711"
LOADED = ["journal_entries", "orders"]  # PostgreSQL: COPY, partitions loaded concurrently
LOCK_STATEMENT = {"postgres": b"pg_try_advisory", "mysql": b"GET_LOCK"}


@contextmanager
def _proxied(server: str, tmp_path: Path) -> Iterator[tuple[Target, DbProxy, str]]:
    """A target of its own, a proxy to its server, and the target's URL through the proxy
    (on PostgreSQL with an application name that finds the sync's sessions, and a
    password)."""
    with target_for(server, tmp_path) as target, DbProxy.for_url(target.url) as proxy:
        url = proxy.url(target.url)
        if server == "postgres":
            app = f"dbf{uuid.uuid4().hex[:10]}"
            url = url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
            url += f"{'&' if '?' in url else '?'}application_name={app}"
        yield target, proxy, url


def _app(url: str) -> str | None:
    found = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("application_name")
    return found[0] if found else None


def _server_sessions(target: Target, url: str) -> int | None:
    """The sync's sessions the PostgreSQL server has now (None on MariaDB: see the proxy)."""
    app = _app(url)
    if app is None:
        return None
    engine = make_engine(target.url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a"),
                {"a": app},
            ).scalar()
    finally:
        engine.dispose()
    return int(count or 0)


def _end_sync_sessions(server: str, target: Target, proxy: DbProxy, url: str) -> int:
    """End the sync's own sessions on the server, and only those: `pg_terminate_backend`
    of its application name, or MariaDB's `KILL` of the connections through the proxy."""
    engine = make_engine(target.url)
    try:
        with engine.connect() as conn:
            if server == "postgres":
                return len(
                    conn.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :a"
                        ),
                        {"a": _app(url)},
                    ).all()
                )
            hosts = {f"127.0.0.1:{port}" for port in proxy.upstream_ports()}
            ids = [
                int(i)
                for i, host in conn.execute(
                    sa.text("SELECT ID, HOST FROM information_schema.PROCESSLIST")
                ).all()
                if host in hosts
            ]
            for session in ids:
                conn.execute(sa.text(f"KILL {session}"))
            return len(ids)
    finally:
        engine.dispose()


def _settings(sim: Simulator, tmp_path: Path, url: str, target: Target, **extra: Any) -> Settings:
    return settings_for(
        sim,
        tmp_path / "unused.duckdb",
        target_url=url,
        target_schema=target.schema,
        load_batch_seconds=0.05,
        **extra,
    )


def _assert_said_well(events: Sequence[Mapping[str, Any]]) -> None:
    """Every warning and error is one line, without a traceback or the password."""
    for event in events:
        if event.get("log_level") not in ("warning", "error", "critical"):
            continue
        text = " ".join(str(v) for v in event.values())
        assert "\n" not in text, event
        assert "exc_info" not in event, event
        assert "Traceback" not in text, event
        assert PASSWORD not in text, event


def _ticks(service: Service, stream: str, status: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "sitoo_ticks_total", {"stream": stream, "status": status}
    )
    return value or 0.0


def _settled(proxy: DbProxy, target: Target, url: str) -> None:
    """Nothing of the sync stays connected through the proxy, nor on the server."""
    deadline = time.monotonic() + 5
    while (proxy.live() or _server_sessions(target, url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy.live() == 0, "a connection outlived its tick"
    assert _server_sessions(target, url) in (None, 0), "a session outlived its tick"


def _timed_tick(service: Service, name: str, bound: float) -> float:
    """One tick of `name` in a thread; its seconds, failing the test past `bound`."""
    ticking = threading.Thread(target=service.tick, args=[STREAMS[name]], daemon=True)
    started = time.monotonic()
    ticking.start()
    ticking.join(bound)
    assert not ticking.is_alive(), f"the tick of {name} still waits after {bound} s"
    return time.monotonic() - started


@pytest.mark.parametrize("server", SERVERS)
def test_a_server_that_takes_the_connection_and_never_answers_fails_the_tick_in_bounds(
    server: str, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server (or a proxy before it) that accepts connections and says nothing fails the
    tick within the connect bound, as one counted line; the next tick, the server back,
    loads and /healthz says so. Before, psycopg waited 130 s and PyMySQL for ever."""
    monkeypatch.setattr(sqla, "CONNECT_SECONDS", 2, raising=False)
    monkeypatch.setattr(sqla, "LOCK_SILENT_SECONDS", 2, raising=False)
    name = "stores"
    with _proxied(server, tmp_path) as (target, proxy, url):
        service = Service(_settings(sim, tmp_path, url, target, streams=[name]), [STREAMS[name]])
        try:
            proxy.hang()
            with structlog.testing.capture_logs() as events:
                seconds = _timed_tick(service, name, 30)
            assert seconds < 15
            [failed] = [e for e in events if e["event"] == "tick_failed"]
            assert "timed out" in failed["error"] or "timeout" in failed["error"]
            _assert_said_well(events)
            assert _ticks(service, name, "failed") == 1
            proxy.restore()
            proxy.cut()  # the stalled connections the client gave up on
            _timed_tick(service, name, 60)
            assert _ticks(service, name, "ok") == 1
            assert service.metrics.health()[1][name]["last_success_age_seconds"] is not None
        finally:
            service.client.close()
        _settled(proxy, target, url)


def test_a_mysql_server_silent_mid_tick_fails_the_tick_in_bounds_and_the_next_recovers(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A MariaDB connection that goes silent mid-tick (a stalled network, a wedged proxy)
    fails the tick once MYSQL_SILENT_SECONDS pass without a word, instead of holding the
    stream's tick, and every later one, for good; the next tick loads everything."""
    monkeypatch.setattr(sqla, "MYSQL_SILENT_SECONDS", 3, raising=False)
    monkeypatch.setattr(sqla, "LOCK_SILENT_SECONDS", 3, raising=False)
    name = "orders"
    with _proxied("mysql", tmp_path) as (target, proxy, url):
        service = Service(_settings(sim, tmp_path, url, target, streams=[name]), [STREAMS[name]])
        try:
            proxy.hang_on = b"INSERT INTO"
            with structlog.testing.capture_logs() as events:
                _timed_tick(service, name, 60)
            assert _ticks(service, name, "failed") == 1
            _assert_said_well(events)
            proxy.restore()
            proxy.cut()
            _timed_tick(service, name, 60)
            assert _ticks(service, name, "ok") == 1
        finally:
            service.client.close()
        _settled(proxy, target, url)


@pytest.mark.parametrize("server", SERVERS)
def test_a_connection_cut_as_the_stream_lock_is_taken_is_one_line_not_a_traceback(
    server: str,
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A connection cut while the stream's lock is asked for ends `run --once` with exit 1
    and one line saying so, and a service tick as a counted failed tick without a
    traceback; before, the driver's error escaped: an `unhandled_exception` traceback from
    `run --once`, and an uncounted tick_failed with the statement and a traceback."""
    from sitoo_sync.cli import main

    name = "stores"
    with _proxied(server, tmp_path) as (target, proxy, url):
        for key, value in sim.settings_env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("SITOO_TARGET_URL", url)
        monkeypatch.setenv("SITOO_TARGET_SCHEMA", target.schema or "")
        monkeypatch.setenv("SITOO_STREAMS", name)
        proxy.cut_on = [CutOn(LOCK_STATEMENT[server], forward=False)]
        assert main(["run", "--once"]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert PASSWORD not in err
        assert f"cannot take the lock '{name}'" in err

        service = Service(_settings(sim, tmp_path, url, target, streams=[name]), [STREAMS[name]])
        try:
            proxy.cut_on = [CutOn(LOCK_STATEMENT[server], forward=False)]
            with structlog.testing.capture_logs() as events:
                service.tick(STREAMS[name])
            _assert_said_well(events)
            assert _ticks(service, name, "failed") == 1
            service.tick(STREAMS[name])
            assert _ticks(service, name, "ok") == 1
        finally:
            service.client.close()
        _settled(proxy, target, url)


def test_a_mysql_connection_lost_amid_the_schema_upkeep_is_said_as_lost(
    sim: Simulator, tmp_path: Path
) -> None:
    """A MariaDB connection lost amid the schema upkeep fails the tick naming the lost
    connection; before, releasing the schema lock on the broken connection replaced it
    with SQLAlchemy's "Can't reconnect until invalid transaction is rolled back"."""
    from sitoo_sync.api.client import make_client
    from sitoo_sync.sync import run_once

    with _proxied("mysql", tmp_path) as (target, proxy, url):
        settings = _settings(sim, tmp_path, url, target, streams=["stores"])
        proxy.cut_on = [CutOn(b"CREATE TABLE", forward=False)]
        with (
            make_client(settings, sleep=lambda _s: None) as client,
            pytest.raises(WarehouseError) as raised,
        ):
            run_once(
                settings,
                open_warehouse(url, schema=target.schema),
                client,
                [STREAMS["stores"]],
            )
        assert "Lost connection" in str(raised.value)
        assert "reconnect" not in str(raised.value)
        _settled(proxy, target, url)


#: What goes wrong on each tick: a connection cut when the client sends a statement (with
#: `forward`, after the server has it: a commit that happened, unheard), the port closed,
#: a slow network, the sync's sessions ended on the server mid-tick.
FAULTS: dict[str, list[Any]] = {
    "postgres": [
        CutOn(b"partition_key", forward=False),  # the service's first read of sync_state
        CutOn(b"COPY", forward=False),
        CutOn(b"COPY", forward=True),  # mid-COPY: the statement is in, the rows are not
        CutOn(b"COMMIT", forward=True),
        "refuse",
        "kill",
        "slow",
    ],
    "mysql": [
        CutOn(b"partition_key", forward=False),
        CutOn(b"INSERT INTO", forward=False),
        CutOn(b"COMMIT", forward=True),
        "refuse",
        "kill",
    ],
}


@pytest.mark.parametrize("server", SERVERS)
def test_ticks_through_cuts_kills_and_refusals_recover_to_a_clean_runs_rows(
    server: str, sim: Simulator, tmp_path: Path
) -> None:
    """One service's ticks through every fault in FAULTS: each ends (failed or not) with
    one-line warnings and errors, no connection or session (and so no lock) left behind;
    the ticks after the server is well again leave the same rows as a clean run's, none
    lost or doubled, and /healthz counts the failed ticks and the recovery."""
    with target_for(server, tmp_path) as clean:
        reference = Service(_settings(sim, tmp_path, clean.url, clean, streams=LOADED), [])
        try:
            for name in LOADED:
                reference.tick(STREAMS[name])
                assert _ticks(reference, name, "ok") == 1
        finally:
            reference.client.close()
        with _proxied(server, tmp_path) as (target, proxy, url):
            setup = open_warehouse(target.url, schema=target.schema)
            try:
                setup.ensure_schema(SYSTEM_TABLES)  # so the service's first tick reads it
            finally:
                setup.close()
            streams = [STREAMS[n] for n in LOADED]
            service = Service(_settings(sim, tmp_path, url, target, streams=LOADED), streams)
            with structlog.testing.capture_logs() as events:
                try:
                    for fault in FAULTS[server]:
                        _tick_through(fault, service, server, target, proxy, url)
                        _settled(proxy, target, url)
                    proxy.restore()
                    for stream in streams:
                        service.tick(stream)
                finally:
                    service.client.close()
            _assert_said_well(events)
            _settled(proxy, target, url)
            assert any(e["event"] == "last_successes_unread" for e in events)
            assert sum(_ticks(service, n, "failed") for n in LOADED) >= 3
            healthy, streams_health = service.metrics.health()
            assert healthy, streams_health
            tables = [table for stream in streams for table in stream.tables]
            got, want = target.bags(tables), clean.bags(tables)
            for table in tables:
                assert got[table.name] == want[table.name], table.name


def _tick_through(
    fault: Any, service: Service, server: str, target: Target, proxy: DbProxy, url: str
) -> None:
    """Every stream's tick with `fault` on, then the proxy well again."""
    killed: list[int] = []
    killer: threading.Thread | None = None
    if isinstance(fault, CutOn):
        proxy.cut_on = [fault]
    elif fault == "refuse":
        proxy.refuse()
    elif fault == "slow":
        proxy.delay = 0.002
    for stream in service.streams:
        if fault == "kill":

            def kill() -> None:
                deadline = time.monotonic() + 5
                while not killed and time.monotonic() < deadline:
                    if proxy.live() >= 2:  # the lock's session and a load's
                        killed.append(_end_sync_sessions(server, target, proxy, url))
                    time.sleep(0.02)

            killer = threading.Thread(target=kill)
            killer.start()
        _timed_tick(service, stream.name, 60)
        if killer is not None:
            killer.join()
    if fault == "kill":
        assert killed, "no session of the sync was ended"
    proxy.restore()
