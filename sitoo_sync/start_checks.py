"""The check `run` makes before it touches the warehouse: the credentials, and on a 404 which
setting is wrong (the base URL, the account, a site). Above `api/` and `streams/`: it lists
the account's sites as the site partitions do."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sitoo_sync.api.client import Api, SitooClient
from sitoo_sync.errors import (
    ApiError,
    AuthError,
    ConfigError,
    FatalApiError,
    RetryBudgetExhausted,
)
from sitoo_sync.log import get_logger
from sitoo_sync.settings import DEFAULT_API_BASE_URL, Settings, env_name
from sitoo_sync.streams.partitions import with_every_site

log = get_logger(__name__)


#: The stream name the check's request is counted under.
CHECK = "credentials_check"

#: How every REST v2 account base ends (the default's path, a placeholder or a number).
_ACCOUNT_BASE_PATH = re.compile(r"/v2/accounts/[^/]+/?$")


def _one_host(settings: Settings) -> bool:
    """Every API base URL of the settings is on one host (the check's)."""
    bases = (settings.api_base_url, settings.journals_base_url, settings.zreports_base_url)
    return len({urlsplit(b).netloc for b in bases if b}) == 1


def _not_found(exc: ApiError) -> bool:
    return isinstance(exc, FatalApiError) and exc.status == 404


def check_credentials(
    settings: Settings, client: SitooClient, *, unreachable_is_fatal: bool = False
) -> None:
    """One request that needs the credentials: a refusal is a configuration error (exit 2),
    said once, before any table, lock or file is made. So is a 404, when a second request
    (`/sites.json`) tells which setting it is: the base URL or account (nothing found), or a
    site the account does not have (see `_explain_not_found`). Other failures are left to
    the tick, where each stream reports its own; but with `unreachable_is_fatal` (one tick,
    `run --once`), an API that no attempt could even connect to ends the command here, in
    one line, when every API the tick uses is on that host: every stream would otherwise
    spend its own attempts on it (a new user's tick against a stopped simulator took 4
    minutes and ~1,000 log lines to say so). A slow or failing API (timeouts, 5xx), or
    journals on another host, are left to the tick."""
    site = settings.site_ids[0] if settings.site_ids else 1
    try:
        client.get_json(Api.V2, f"/sites/{site}/cashregisters.json", {"num": 1}, stream=CHECK)
    except AuthError as exc:
        raise _refused(settings, exc) from None
    except ApiError as exc:
        if _not_found(exc):
            _explain_not_found(settings, client, exc)
            return
        never_connected = client.unconnected[CHECK] == client.requests[CHECK]
        if (
            unreachable_is_fatal
            and isinstance(exc, RetryBudgetExhausted)
            and never_connected
            and _one_host(settings)
        ):
            raise ApiError(
                f"cannot reach the Sitoo API, nothing was synced: {exc.message} "
                f"(check {env_name('api_base_url')} and the network)",
                url=exc.url,
            ) from None
        log.warning("credentials_unchecked", error=str(exc))


def _refused(settings: Settings, exc: AuthError) -> ConfigError:
    return ConfigError(
        f"Sitoo refused the credentials of {env_name('api_id')} {settings.api_id}: check "
        f"it and {env_name('api_password')} (or {env_name('api_password_file')}); "
        f"HTTP {exc.status} from {exc.url}"
    )


def _explain_not_found(settings: Settings, client: SitooClient, first: ApiError) -> None:
    """After a 404 on a site's cash registers (an endpoint every account has), ask for the
    account's sites: a 404 there too means the base URL or the account is wrong; an answer
    without a configured site names that site. An answer that lists them all, or a failure
    of another kind, concludes nothing: a warning, and the tick goes on."""
    try:
        listed = with_every_site(settings.model_copy(update={"site_ids": []}), client)
    except AuthError as exc:
        raise _refused(settings, exc) from None
    except (ApiError, ValueError) as exc:
        if isinstance(exc, ApiError) and _not_found(exc):
            raise _wrong_base(settings, exc) from None
        log.warning("credentials_unchecked", error=str(first))
        return
    sites = listed.site_ids
    missing = [s for s in settings.site_ids if s not in sites]
    if missing:
        which = f"{'site' if len(missing) == 1 else 'sites'} {', '.join(map(str, missing))}"
        has = ", ".join(map(str, sites)) or "none"
        raise ConfigError(
            f"{env_name('site_ids')}: account {settings.resolved_account_id} has no {which} "
            f"(its sites: {has})"
        )
    if settings.site_ids:  # every site is listed, yet its registers are not found
        log.warning("credentials_unchecked", error=str(first))


def _wrong_base(settings: Settings, exc: ApiError) -> ConfigError:
    """The one line for a REST base on which not even the account's sites are found."""
    base_name, base = env_name("api_base_url"), settings.api_base_url
    found = f"the REST API answers 404 ({exc.message}) at {exc.url}"
    if not _ACCOUNT_BASE_PATH.search(urlsplit(base).path):
        return ConfigError(
            f"{base_name}: {found}: the path must end in /v2/accounts/{{account_id}}, as in "
            f"{DEFAULT_API_BASE_URL} (got {base!r})"
        )
    account = settings.resolved_account_id
    source = (
        env_name("account_id")
        if settings.account_id
        else f"the part of {env_name('api_id')} before the dash, or set {env_name('account_id')}"
    )
    return ConfigError(
        f"{base_name} or the account is wrong: {found}; check account {account} ({source}) "
        f"and the host of {base}"
    )
