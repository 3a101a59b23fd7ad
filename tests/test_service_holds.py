"""/healthz of a replica whose streams or partitions another process holds: true to the target."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sitoo_sync.service import Service
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import Simulator
from sitoo_sync.streams import STREAMS
from tests.conftest import SyncFn
from tests.support import partition_locks, take_lock, target_settings
from tests.targets import target_for

SERVERS = ["postgres", "mysql"]
#: The schedule of the streams here, so three intervals pass in a test's seconds.
EVERY = "1s"
LIMIT = 3.0  # HEALTHY_WITHIN_INTERVALS of EVERY


def _ticked(settings: Settings, name: str) -> tuple[bool, dict[str, object]]:
    """/healthz's (ready, details) after one service tick of stream `name`."""
    stream = STREAMS[name]
    service = Service(settings, [stream])
    try:
        service.tick(stream)
        ready, details = service.metrics.health()
    finally:
        service.client.close()
    return ready, details[name]


@pytest.mark.parametrize("server", SERVERS)
def test_a_stream_held_by_a_process_that_does_not_sync_it_is_not_ready(
    server: str, sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """A replica whose ticks find a one-partition stream's lock held is ready only while
    the stream's last success on the target is recent: a holder that stopped syncing (hung,
    or its host gone and its session not yet ended by the server) makes every replica
    unready in three intervals, instead of ready for good while nothing syncs."""
    name = "pos_z_reports"
    with target_for(server, tmp_path) as target:
        settings = target_settings(sim, target, streams=[name], schedules={name: EVERY})
        assert sync(settings).ok
        holder = take_lock(settings, name)
        assert holder is not None
        try:
            time.sleep(LIMIT + 0.5)  # the holder has not synced it since
            ready, details = _ticked(settings, name)
            assert ready is False, details
        finally:
            holder.release()
        assert sync(settings).ok  # a holder that syncs it
        holder = take_lock(settings, name)
        assert holder is not None
        try:
            ready, details = _ticked(settings, name)
            assert ready is True, details
        finally:
            holder.release()


@pytest.mark.parametrize("server", SERVERS)
def test_partitions_held_by_a_process_that_does_not_sync_them_make_the_stream_unready(
    server: str, sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """A tick that leaves some of a stream's partitions to another process (their locks are
    held) is not a success of those partitions: the stream is ready only while every
    partition's last success on the target is recent, not because this tick synced the
    rest, or nothing."""
    name = "stores"
    with target_for(server, tmp_path) as target:
        settings = target_settings(sim, target, streams=[name], schedules={name: EVERY})
        assert sync(settings).ok
        held = [str(site) for site in settings.site_ids[:1]]
        holder = partition_locks(settings, name)
        try:
            assert all(holder.try_acquire(p) is not None for p in held)
            time.sleep(LIMIT + 0.5)  # the holder has not synced them since
            ready, details = _ticked(settings, name)
            assert ready is False, details
            assert details["last_success_age_seconds"] > LIMIT  # type: ignore[operator]
        finally:
            holder.close()
        ready, details = _ticked(settings, name)  # nothing held: this replica syncs them
        assert ready is True, details
