"""Who may write what on a target, whoever starts it: service, cron tick, a replica.

The locks themselves live behind the warehouse seam (`Warehouse.lock`,
`Warehouse.partition_locks`; warehouse/locks.py and warehouse/file_locks.py have how each
target takes them). This module holds the engine's rule of which lock a stream takes:

On PostgreSQL and MySQL a stream split into partitions (sites, registers) is shared: every
process that syncs it holds the stream's lock in shared mode (`shares_partitions`), and each
partition is locked on its own (`Warehouse.partition_locks`), so replicas split the
partitions between them. `reset` takes the stream's lock exclusively, so it never moves
cursors that a tick is moving. A stream of one partition (the account) and every stream of
a file target keep one exclusive lock: one partition cannot be split, and one process writes
a file anyway.

Each is released by the operating system or the database server when its holder dies, so a
lock left by a killed process is recovered without anyone deleting anything. A lock that is
held makes the tick skip the stream (or the partition), which is not an error.
"""

from __future__ import annotations

from sitoo_sync.settings import Settings
from sitoo_sync.warehouse import shares_locks


def shares_partitions(settings: Settings, stream: str) -> bool:
    """True when processes split `stream`'s partitions: a target with shared (server) locks
    and a stream of several partitions (sites, registers). A tick then takes the stream's
    lock shared (`warehouse.lock(stream, shared=True)`); `reset` always exclusive."""
    from sitoo_sync.streams import STREAMS

    known = STREAMS.get(stream)
    return shares_locks(settings.target_url) and known is not None and not known.partitions.single
