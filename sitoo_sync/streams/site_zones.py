"""Every site's time zone, read once at the start of a tick: the local day of a record that
carries no zone of its own.

The site's zone is `timezone` of `GET {v2}/sites/{id}/settings.json` (fact sheet, "Timezone");
the sites are those `GET {v2}/sites.json` lists (the whole account: a z-report or an order
names its own site). A zone the API failed to give this tick (retries spent, a timeout) is
*unread*: a stream then makes the records that need it wait for the next tick rather than
date them in another zone for good. A site whose settings the API says are not there (404,
403), or that names no zone, has none, and so has every site when the listing itself is
refused so (credentials without REST v2): retrying would not bring one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sitoo_sync.api.client import Api
from sitoo_sync.errors import FatalApiError, SitooSyncError
from sitoo_sync.log import get_logger
from sitoo_sync.streams.base import TickSources, items_of

log = get_logger(__name__)

#: Unread, for every site: the listing of the sites itself failed.
EVERY_SITE = "*"


@dataclass(frozen=True)
class SiteZones:
    """Each site's zone (eshopid as text -> IANA name), and the sites whose zone could not
    be read this tick (`EVERY_SITE` when the listing failed)."""

    zones: Mapping[str, str]
    unread: tuple[str, ...] = ()

    def unread_for(self, eshopid: str) -> bool:
        """Whether the zone of site `eshopid` may exist but was not read this tick."""
        return EVERY_SITE in self.unread or eshopid in self.unread


def read_site_zones(sources: TickSources, stream: str, *, wait: str, no_zone: str) -> SiteZones:
    """The account's site zones for `stream`'s tick; what a failure costs is logged with it
    (`wait`: a zone that failed to read, `no_zone`: a site that has none)."""
    zones: dict[str, str] = {}
    try:
        sites = items_of(sources.get(Api.V2, "/sites.json"))
    except (SitooSyncError, ValueError) as exc:
        gone = isinstance(exc, FatalApiError)  # no REST v2 for these credentials: no zones
        effect = no_zone if gone else wait
        log.warning("site_zones_unavailable", stream=stream, error=str(exc), effect=effect)
        return SiteZones(zones, () if gone else (EVERY_SITE,))
    unread: list[str] = []
    for site in sites:
        eshopid = site.get("eshopid") if isinstance(site, Mapping) else None
        if type(eshopid) is not int:
            continue
        try:
            settings = sources.get(Api.V2, f"/sites/{eshopid}/settings.json")
        except SitooSyncError as exc:
            gone = isinstance(exc, FatalApiError)  # 404, 403: no retry brings a zone
            if not gone:
                unread.append(str(eshopid))
            log.warning(
                "site_zone_unavailable",
                stream=stream,
                site=eshopid,
                error=exc.message,
                effect=no_zone if gone else wait,
            )
            continue
        zone = settings.get("timezone") if isinstance(settings, Mapping) else None
        if isinstance(zone, str) and zone:
            zones[str(eshopid)] = zone
    return SiteZones(zones, tuple(unread))
