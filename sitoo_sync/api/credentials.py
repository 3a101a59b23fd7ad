"""The credentials check that `run` makes before it touches the warehouse."""

from __future__ import annotations

from sitoo_sync.api.client import Api, SitooClient
from sitoo_sync.errors import ApiError, AuthError, ConfigError
from sitoo_sync.log import get_logger
from sitoo_sync.settings import Settings, env_name

log = get_logger(__name__)


def check_credentials(settings: Settings, client: SitooClient) -> None:
    """One request that needs the credentials: a refusal is a configuration error (exit 2),
    said once, before any table, lock or file is made. Other failures are left to the tick,
    where each stream reports its own."""
    site = settings.site_ids[0] if settings.site_ids else 1
    try:
        client.get_json(
            Api.V2, f"/sites/{site}/cashregisters.json", {"num": 1}, stream="credentials_check"
        )
    except AuthError as exc:
        raise ConfigError(
            f"Sitoo refused the credentials of {env_name('api_id')} {settings.api_id}: check "
            f"it and {env_name('api_password')} (or {env_name('api_password_file')}); "
            f"HTTP {exc.status} from {exc.url}"
        ) from None
    except ApiError as exc:
        log.warning("credentials_unchecked", error=str(exc))
