"""The credentials check that `run` makes before it touches the warehouse."""

from __future__ import annotations

from urllib.parse import urlsplit

from sitoo_sync.api.client import Api, SitooClient
from sitoo_sync.errors import ApiError, AuthError, ConfigError, RetryBudgetExhausted
from sitoo_sync.log import get_logger
from sitoo_sync.settings import Settings, env_name

log = get_logger(__name__)


#: The stream name the check's request is counted under.
CHECK = "credentials_check"


def _one_host(settings: Settings) -> bool:
    """Every API base URL of the settings is on one host (the check's)."""
    bases = (settings.api_base_url, settings.journals_base_url, settings.zreports_base_url)
    return len({urlsplit(b).netloc for b in bases if b}) == 1


def check_credentials(
    settings: Settings, client: SitooClient, *, unreachable_is_fatal: bool = False
) -> None:
    """One request that needs the credentials: a refusal is a configuration error (exit 2),
    said once, before any table, lock or file is made. Other failures are left to the tick,
    where each stream reports its own; but with `unreachable_is_fatal` (one tick, `run
    --once`), an API that no attempt could even connect to ends the command here, in one
    line, when every API the tick uses is on that host: every stream would otherwise spend
    its own attempts on it (a new user's tick against a stopped simulator took 4 minutes
    and ~1,000 log lines to say so). A slow or failing API (timeouts, 5xx), or journals on
    another host, are left to the tick."""
    site = settings.site_ids[0] if settings.site_ids else 1
    try:
        client.get_json(Api.V2, f"/sites/{site}/cashregisters.json", {"num": 1}, stream=CHECK)
    except AuthError as exc:
        raise ConfigError(
            f"Sitoo refused the credentials of {env_name('api_id')} {settings.api_id}: check "
            f"it and {env_name('api_password')} (or {env_name('api_password_file')}); "
            f"HTTP {exc.status} from {exc.url}"
        ) from None
    except ApiError as exc:
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
