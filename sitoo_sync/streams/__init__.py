"""streams/: one declaration per Sitoo endpoint; `STREAMS` is the registry by name.

Everything the CLI's help, the example config and the README say about streams is read
from (or checked against) this registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sitoo_sync.errors import ConfigError
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cash_registers import CASH_REGISTERS
from sitoo_sync.streams.categories import CATEGORIES
from sitoo_sync.streams.journal_entries import JOURNAL_ENTRIES
from sitoo_sync.streams.manufacturers import MANUFACTURERS
from sitoo_sync.streams.orders import ORDERS
from sitoo_sync.streams.pos_payment_types import POS_PAYMENT_TYPES
from sitoo_sync.streams.pos_z_reports import POS_Z_REPORTS
from sitoo_sync.streams.product_groups import PRODUCT_GROUPS
from sitoo_sync.streams.products import PRODUCTS
from sitoo_sync.streams.sites import SITES
from sitoo_sync.streams.store_z_reports import STORE_Z_REPORTS
from sitoo_sync.streams.stores import STORES
from sitoo_sync.streams.users import USERS
from sitoo_sync.streams.warehouse_items import WAREHOUSE_ITEMS
from sitoo_sync.streams.warehouse_transactions import WAREHOUSE_TRANSACTIONS
from sitoo_sync.streams.warehouses import WAREHOUSES

#: In the order a tick runs them: a stream that lists partitions (registers) before the
#: streams partitioned by them, so those see a new register at once.
STREAMS: dict[str, Stream] = {
    s.name: s
    for s in (
        CASH_REGISTERS,
        JOURNAL_ENTRIES,
        POS_Z_REPORTS,
        STORE_Z_REPORTS,
        # REST v2 sales and stock movements (issue 12b)
        ORDERS,
        WAREHOUSE_TRANSACTIONS,
        # REST v2 catalogue, stock and users (issue 12a)
        SITES,
        STORES,
        WAREHOUSES,
        POS_PAYMENT_TYPES,
        PRODUCT_GROUPS,
        MANUFACTURERS,
        CATEGORIES,
        PRODUCTS,
        WAREHOUSE_ITEMS,
        USERS,
    )
}


def select_streams(
    names: Sequence[str] | None, stream_options: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Stream]:
    """The streams named in SITOO_STREAMS (when unset: every stream enabled by default),
    with their own settings applied; a ConfigError names a bad name or setting."""
    if names:
        unknown = [n for n in names if n not in STREAMS]
        if unknown:
            raise ConfigError(
                f"SITOO_STREAMS: unknown stream {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(STREAMS)}"
            )
        chosen = [stream for name, stream in STREAMS.items() if name in names]
    else:
        chosen = [stream for stream in STREAMS.values() if stream.enabled_by_default]
    if stream_options is None:
        return chosen
    unknown = [n for n in stream_options if n not in STREAMS]
    if unknown:
        raise ConfigError(f"[streams.{unknown[0]}]: no such stream; known: {', '.join(STREAMS)}")
    for stream in STREAMS.values():  # a bad setting is an error even for a stream left off
        stream.configured(stream_options)
    return [stream.configured(stream_options) for stream in chosen]


#: SITOO_* variables that are not settings: the config file's path; by prefix, the test
#: suite's server URLs (`SITOO_TEST_*`, set by .ci/run) and the service links Kubernetes
#: adds to every pod for a Service named sitoo-sync (`SITOO_SYNC_SERVICE_HOST`, ...).
_NOT_SETTINGS = {"SITOO_CONFIG"}
_NOT_SETTINGS_PREFIXES = ("SITOO_TEST_", "SITOO_SYNC_")


def unknown_environment(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The SITOO_* variables of `environ` that no setting and no stream option reads, each
    with the known name it looks most like (or None): a misspelt one is otherwise ignored
    without a word, where the same key in the config file is refused."""
    from difflib import get_close_matches

    from sitoo_sync.settings import ENV_PREFIX, Settings, env_name

    known = {env_name(field) for field in Settings.model_fields}
    known |= {n for s in STREAMS.values() for o in s.options for n in o.env_names(s.name)}
    known |= _NOT_SETTINGS
    unknown: dict[str, str | None] = {}
    for name in sorted(environ):
        upper = name.upper()  # settings are read whatever the case of their names
        if (
            upper.startswith(ENV_PREFIX)
            and upper not in known
            and not upper.startswith(_NOT_SETTINGS_PREFIXES)
        ):
            close = get_close_matches(upper, sorted(known), n=1, cutoff=0.8)
            unknown[name] = close[0] if close else None
    return unknown
