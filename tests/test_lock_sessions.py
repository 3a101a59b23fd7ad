"""The server sessions that hold a process's locks: kept while idle, and let go quietly."""

from __future__ import annotations

import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
import structlog

from sitoo_sync.settings import Settings
from sitoo_sync.simulator import Simulator
from sitoo_sync.warehouse.base import Claim
from sitoo_sync.warehouse.dialects import mysql_lock_name
from sitoo_sync.warehouse.file_locks import scoped_name
from sitoo_sync.warehouse.locks import slot_name
from sitoo_sync.warehouse.sqla import make_engine
from tests.support import partition_locks, settings_for, take_lock
from tests.targets import Target, target_for

SERVERS = ["postgres", "mysql"]
#: What a server that ends idle sessions after a second does to every new one (as its
#: idle_session_timeout or wait_timeout would), given in the URL the way the driver reads it.
IDLE_SECOND = {
    "postgres": ("options", "-c idle_session_timeout=1000"),
    "mysql": ("init_command", "SET SESSION wait_timeout = 1"),
}


def _with_query(url: str, name: str, value: str) -> str:
    """`url` with one more query parameter."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}{name}={urllib.parse.quote(value)}"


def _settings(target: Target, url: str | None = None) -> Settings:
    return Settings(target_url=url or target.url, target_schema=target.schema)


@pytest.mark.parametrize("server", SERVERS)
def test_locks_stay_held_past_the_servers_idle_session_timeout(server: str, tmp_path: Path) -> None:
    """A server that ends sessions idle for a second (PostgreSQL's idle_session_timeout,
    MySQL's wait_timeout, set low on managed servers) does not end a lock's session: a
    stream's lock and a partition's, idle for longer than that (as through a long tick),
    still keep another process out and still serve their holder."""
    with target_for(server, tmp_path) as target:
        settings = _settings(target, _with_query(target.url, *IDLE_SECOND[server]))
        stream = take_lock(settings, "pos_z_reports")
        partitions = partition_locks(settings, "journal_entries")
        try:
            assert stream is not None
            assert partitions.try_acquire("r1") == Claim(None)
            time.sleep(3)  # idle for three times the server's limit
            assert take_lock(settings, "pos_z_reports") is None
            theirs = partition_locks(settings, "journal_entries")
            try:
                assert theirs.try_acquire("r1") is None
            finally:
                theirs.close()
            assert partitions.try_acquire("r2") == Claim(None)
        finally:
            partitions.close()
            if stream is not None:
                stream.release()


def _end_sessions_holding(server: str, target: Target, url: str, lock: str) -> None:
    """End, from another session, the server session that holds the stream lock `lock`
    (a network cut, a restarted proxy, an administrator's kill)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if server == "postgres":
                app = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["application_name"]
                ended = conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
                        "JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND a.application_name = :app"
                    ),
                    {"app": app[0]},
                ).all()
            else:
                name = mysql_lock_name(slot_name(scoped_name(target.schema, lock), 0))
                holder = conn.execute(sa.text("SELECT IS_USED_LOCK(:k)"), {"k": name}).scalar()
                if holder:
                    conn.execute(sa.text(f"KILL {int(holder)}"))
                ended = [holder] if holder else []
            assert ended, "no session held the lock"
    finally:
        engine.dispose()


@pytest.mark.parametrize("server", SERVERS)
def test_a_lock_whose_session_ended_is_released_quietly(server: str, tmp_path: Path) -> None:
    """Releasing a lock whose server session ended meanwhile (the server freed it with the
    session) is one warning, not an exception that fails the tick that held it or a
    `run --once` that loaded everything."""
    with target_for(server, tmp_path) as target:
        url = _with_query(target.url, "application_name", f"t{uuid.uuid4().hex[:12]}")
        settings = _settings(target, url if server == "postgres" else None)
        lock = take_lock(settings, "pos_z_reports")
        assert lock is not None
        _end_sessions_holding(server, target, settings.target_url, "pos_z_reports")
        with structlog.testing.capture_logs() as events:
            lock.release()
        assert [e["event"] for e in events] == ["lock_not_released"]
        again = take_lock(settings, "pos_z_reports")
        assert again is not None
        again.release()


@pytest.mark.parametrize("server", SERVERS)
def test_a_tick_whose_stream_lock_is_lost_stops_and_fails(
    server: str, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the server ends the session a tick's stream lock lives on (the lock is free
    again: another replica or `reset` may take it), the tick notices within a heartbeat
    and stops after the window under way, a counted failure that says why, instead of
    loading on for the rest of its backfill beside whoever took the lock."""
    from sitoo_sync.service import Service
    from sitoo_sync.streams import STREAMS
    from sitoo_sync.warehouse import locks

    monkeypatch.setattr(locks, "HEARTBEAT_SECONDS", 0.2, raising=False)
    name = "store_z_reports"  # one partition: its stream lock is its only lock
    stream = STREAMS[name]
    with target_for(server, tmp_path) as target:
        url = _with_query(target.url, "application_name", f"t{uuid.uuid4().hex[:12]}")
        settings = settings_for(
            sim,
            tmp_path / "unused.duckdb",
            target_url=url if server == "postgres" else target.url,
            target_schema=target.schema,
            streams=[name],
            load_batch_seconds=0.1,
        )
        sim.faults.latency = 0.3  # ~90 requests: a tick of half a minute at least
        service = Service(settings, [stream])
        ticking = threading.Thread(target=service.tick, args=[stream])
        try:
            with structlog.testing.capture_logs() as events:
                ticking.start()
                time.sleep(3)  # well into the tick
                assert take_lock(settings, name) is None
                _end_sessions_holding(server, target, settings.target_url, name)
                lost_at = time.monotonic()
                ticking.join(timeout=60)
                stopped_after = time.monotonic() - lost_at
        finally:
            sim.faults.latency = 0.0
            ticking.join()
            service.client.close()
        assert stopped_after < 8, f"the tick loaded on for {stopped_after:.0f} s without its lock"
        [failed] = [e for e in events if e["event"] == "tick_failed"]
        assert "lock" in failed["error"]
        assert [e["event"] for e in events if e["event"] == "lock_lost"] == ["lock_lost"]
        errors = service.metrics.registry.get_sample_value
        assert errors("sitoo_errors_total", {"stream": name}) == 1
        assert service.metrics.health()[1][name]["last_success_age_seconds"] is None


@pytest.mark.parametrize("server", SERVERS)
def test_a_replicas_stream_lock_never_holds_a_partition_numbered_like_its_slot(
    server: str, tmp_path: Path
) -> None:
    """Replicas holding a site stream's lock shared (on MySQL, one of its slot locks each)
    leave every site free to be claimed: a stream lock's slot named like a partition (site
    1 and slot 1) kept that site from every replica, for as long as the slot was held."""
    with target_for(server, tmp_path) as target:
        settings = _settings(target)
        replicas = [take_lock(settings, "stores", shared=True) for _ in range(3)]
        claims = partition_locks(settings, "stores")
        try:
            assert all(lock is not None for lock in replicas)
            assert [claims.try_acquire(str(site)) for site in range(8)] == [Claim(None)] * 8
        finally:
            claims.close()
            for lock in replicas:
                if lock is not None:
                    lock.release()


@pytest.mark.parametrize("server", SERVERS)
def test_a_run_once_whose_stream_lock_is_lost_stops_and_exits_1(
    server: str,
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`run --once` (cron, a Kubernetes CronJob) watches its stream locks as the service
    does: when the server ends the session one lives on, the run stops after the windows
    under way and exits 1 saying so, instead of loading on beside whoever takes the lock."""
    from sitoo_sync.cli import main
    from sitoo_sync.warehouse import locks

    monkeypatch.setattr(locks, "HEARTBEAT_SECONDS", 0.2, raising=False)
    name = "store_z_reports"  # one partition: its stream lock is its only lock
    with target_for(server, tmp_path) as target:
        url = _with_query(target.url, "application_name", f"t{uuid.uuid4().hex[:12]}")
        url = url if server == "postgres" else target.url
        for key, value in sim.settings_env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("SITOO_TARGET_URL", url)
        if target.schema:
            monkeypatch.setenv("SITOO_TARGET_SCHEMA", target.schema)
        monkeypatch.setenv("SITOO_STREAMS", name)
        sim.faults.latency = 0.3  # ~90 requests: a run of half a minute at least
        ended: list[float] = []

        def end_its_session() -> None:
            time.sleep(3)  # well into the run
            _end_sessions_holding(server, target, url, name)
            ended.append(time.monotonic())

        killer = threading.Thread(target=end_its_session)
        try:
            killer.start()
            code = main(["run", "--once"])
            finished = time.monotonic()
        finally:
            sim.faults.latency = 0.0
            killer.join()
    assert code == 1
    assert finished - ended[0] < 8, f"the run loaded on for {finished - ended[0]:.0f} s"
    assert "lock was lost" in capsys.readouterr().err


def test_a_postgresql_lock_session_is_probed_so_a_dead_hosts_locks_free_within_a_minute(
    tmp_path: Path,
) -> None:
    """The sessions holding a stream's and the partitions' locks have the server probe them
    after 30 s idle, 3 probes 10 s apart (not the system's two hours), and the client probe
    the server likewise with writes unacknowledged for 60 s failing: a replica whose host
    died frees its locks within about a minute, and one cut off learns it as soon."""
    with target_for("postgres", tmp_path) as target:
        settings = _settings(target)
        stream = take_lock(settings, "pos_z_reports")
        partitions = partition_locks(settings, "journal_entries")
        try:
            assert stream is not None
            for conn in (stream._conn, partitions._conn):  # type: ignore[attr-defined]
                shown = {
                    name: conn.execute(sa.text(f"SHOW tcp_keepalives_{name}")).scalar()
                    for name in ("idle", "interval", "count")
                }
                assert shown == {"idle": "30", "interval": "10", "count": "3"}
                client = conn.connection.dbapi_connection.info.get_parameters()
                assert client["keepalives_idle"] == "30"
                assert client["tcp_user_timeout"] == "60000"
        finally:
            partitions.close()
            if stream is not None:
                stream.release()
