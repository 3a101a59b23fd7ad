"""Who may write what on a target, whoever starts it: service, cron tick, a replica.

The locks themselves live behind the warehouse seam (`Warehouse.lock`,
`Warehouse.partition_locks`; warehouse/locks.py has how each target takes them). This module
holds the engine's rule of which lock a stream takes:

On PostgreSQL and MySQL a stream split into partitions (sites, registers) is shared: every
process that syncs it holds the stream's lock in shared mode, and each partition is locked
on its own (`PartitionLocks`), so replicas split the partitions between them. `reset` takes
the stream's lock exclusively, so it never moves cursors that a tick is moving. A stream of
one partition (the account) and every stream of a file target keep one exclusive lock: one
partition cannot be split, and one process writes a file anyway.

Each is released by the operating system or the database server when its holder dies, so a
lock left by a killed process is recovered without anyone deleting anything. A lock that is
held makes the tick skip the stream (or the partition), which is not an error.
"""

from __future__ import annotations

from sitoo_sync.errors import ConfigError
from sitoo_sync.settings import Settings
from sitoo_sync.warehouse import open_warehouse, shares_locks
from sitoo_sync.warehouse.base import Lock
from sitoo_sync.warehouse.locks import scoped_name

#: The older name of a held lock.
StreamLock = Lock


def lock_name(settings: Settings, stream: str) -> str:
    """The lock's name on a server: tool, schema and stream."""
    return scoped_name(settings.target_schema, stream)


def shares_partitions(settings: Settings, stream: str) -> bool:
    """True when processes split `stream`'s partitions: a target with shared (server) locks
    and a stream of several partitions (sites, registers)."""
    from sitoo_sync.streams import STREAMS

    known = STREAMS.get(stream)
    return shares_locks(settings.target_url) and known is not None and not known.partitions.single


def try_lock(settings: Settings, stream: str, *, exclusive: bool = False) -> Lock | None:
    """The stream's lock on the settings' target, or None when another writer holds it.

    Shared for a stream whose partitions processes split (see `shares_partitions`) unless
    `exclusive`, which `reset` asks for: it waits for no tick, and no tick starts during it.
    """
    shared = not exclusive and shares_partitions(settings, stream)
    warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
    try:
        return warehouse.lock(stream, shared=shared)
    finally:
        warehouse.close()  # the lock lives on a connection (or file handle) of its own


def partition_locks(settings: Settings, stream: str) -> PartitionLocks | None:
    """Per-partition locks when processes split `stream` (see `shares_partitions`), else
    None: the stream's exclusive lock covers its partitions."""
    if not shares_partitions(settings, stream):
        return None
    return PartitionLocks(settings, stream)


class PartitionLocks:
    """Locks on single partitions of one stream on the settings' target, all on one
    connection of the process (see `Warehouse.partition_locks`)."""

    def __init__(self, settings: Settings, stream: str) -> None:
        warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
        try:
            locks = warehouse.partition_locks(stream)
        finally:
            warehouse.close()
        if locks is None:
            raise ConfigError(f"{stream}: the target has no shared locks to split partitions by")
        self._locks = locks

    def try_acquire(self, partition: str) -> bool:
        """True when this process now holds `partition`; False when another one does."""
        return self._locks.try_acquire(partition)

    def release(self, partition: str) -> None:
        """Let another process have `partition`."""
        self._locks.release(partition)

    def close(self) -> None:
        """End the connection: the server frees whatever it still holds."""
        self._locks.close()
