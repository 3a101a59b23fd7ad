"""streams/: one declaration per Sitoo endpoint; `STREAMS` is the registry by name."""

from __future__ import annotations

from collections.abc import Sequence

from sitoo_sync.errors import ConfigError
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cash_registers import CASH_REGISTERS
from sitoo_sync.streams.journal_entries import JOURNAL_ENTRIES
from sitoo_sync.streams.pos_z_reports import POS_Z_REPORTS
from sitoo_sync.streams.store_z_reports import STORE_Z_REPORTS

#: In the order a tick runs them: registers first, so journals see new registers at once.
STREAMS: dict[str, Stream] = {
    s.name: s for s in (CASH_REGISTERS, JOURNAL_ENTRIES, POS_Z_REPORTS, STORE_Z_REPORTS)
}


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
    return [stream for name, stream in STREAMS.items() if name in names]
