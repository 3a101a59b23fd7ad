"""Users (`GET {v2}/sites/{siteid}/users.json`): staff (and customers if asked), opt-in.

Fact sheet 8: no modified filter and no sort, so each site's users are listed in full every
tick with start/num; users no longer listed get `missing_since`. The default field set
lacks `role`, so the fields are explicit (normalize/users.py FIELDS). Customers (users with
no role on the site; an INFERENCE) are left out before normalizing unless
`include_customers` is set. Off by default: SITOO_STREAMS must name it. Personal fields
follow SITOO_PERSONAL_DATA.
"""

from __future__ import annotations

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import users as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors_listing import StaffOnly
from sitoo_sync.streams.options import Option
from sitoo_sync.streams.partitions import SITES

USERS = Stream(
    name="users",
    api=Api.V2,
    path="/sites/{siteid}/users.json",
    cursor=StaffOnly(fixed=(("fields", ",".join(normalize.FIELDS)),)),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Users (staff; customers only if asked) of every configured site, personal "
    "fields as SITOO_PERSONAL_DATA says",
    default_schedule="1h",
    partitions=SITES,
    full_refresh=True,
    partition_column="site_id",
    enabled_by_default=False,
    options=(
        Option(
            "include_customers",
            bool,
            "also load customers (users with no role on the site), not only staff",
        ),
    ),
)
