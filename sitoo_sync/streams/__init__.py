"""streams/: one declaration per Sitoo endpoint; `STREAMS` is the registry by name."""

from __future__ import annotations

from collections.abc import Sequence

from sitoo_sync.errors import ConfigError
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.pos_z_reports import POS_Z_REPORTS
from sitoo_sync.streams.store_z_reports import STORE_Z_REPORTS

STREAMS: dict[str, Stream] = {s.name: s for s in (POS_Z_REPORTS, STORE_Z_REPORTS)}


def select_streams(names: Sequence[str] | None) -> list[Stream]:
    """The streams named in SITOO_STREAMS (all when unset), or a ConfigError naming the bad one."""
    if not names:
        return list(STREAMS.values())
    unknown = [n for n in names if n not in STREAMS]
    if unknown:
        raise ConfigError(
            f"SITOO_STREAMS: unknown stream {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(STREAMS)}"
        )
    return [STREAMS[n] for n in names]
