"""Settings: the only reader of the environment and of the TOML config file.

Precedence, highest first: environment variables (`SITOO_*`), then the TOML file named by
`--config` or `SITOO_CONFIG`, then the defaults below. A secret may also come from a file
(`SITOO_API_PASSWORD_FILE`), the way container platforms mount secrets. Every key of the
TOML file is the environment name without the `SITOO_` prefix, in lower case.

A variable set to the empty string is unset. Whitespace around a value is no part of it
(the hash key's excepted), and a blank value in the file is the setting's default.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from sitoo_sync.errors import ConfigError

ENV_PREFIX = "SITOO_"

DEFAULT_API_BASE_URL = "https://api.mysitoo.com/v2/accounts/{account_id}"
DEFAULT_JOURNALS_BASE_URL = "https://journals.sitooapis.com/v3"
MAX_CONCURRENCY = 64  # SITOO_CONCURRENCY at most: connection pools are sized to it
#: An HTTP timeout or backoff at most: a socket or a sleep overflows on a huge one.
MAX_WAIT_SECONDS = 3600


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    return f"{ENV_PREFIX}{field.upper()}"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


SITE_IDS_FORM = (
    "expected site ids (eshopid) such as 1,2; leave it unset for every site of the account"
)


def parse_site_ids(value: object) -> list[int]:
    """SITOO_SITE_IDS as positive integers split by commas (or a TOML list, or one
    integer), each once, in the order given: a site named twice was synced twice a tick."""
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, int) and not isinstance(items, bool):
        items = [items]
    if not isinstance(items, list):
        raise ValueError(SITE_IDS_FORM)
    sites: list[int] = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if text == "":
            continue
        if isinstance(text, str) and text.isdecimal():
            text = int(text)
        if not isinstance(text, int) or isinstance(text, bool) or text < 1:
            raise ValueError(SITE_IDS_FORM)
        sites.append(text)
    return list(dict.fromkeys(sites))


SCHEDULES_FORMS = (
    'JSON such as {"pos_z_reports": "15m"}, or pairs such as pos_z_reports=15m,journal_entries=5m'
)


def parse_schedules(value: object) -> object:
    """SITOO_SCHEDULES as JSON, or as `stream=when` pairs split by commas or new lines.

    A pair may also be written the TOML way (`pos_z_reports = "15m"`): the quotes go.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"not valid JSON; expected {SCHEDULES_FORMS}") from None
    pairs: dict[str, str] = {}
    # A comma separates pairs only before the next `name=`: cron fields have commas too.
    for part in filter(None, (p.strip() for p in re.split(r",(?=\s*\w+\s*=)|\n", text))):
        name, sep, when = part.partition("=")
        if not sep or not name.strip() or not when.strip():
            raise ValueError(f"expected {SCHEDULES_FORMS}")
        pairs[name.strip()] = when.strip().strip("\"'")
    return pairs


def stream_sections(data: Any) -> Any:
    """Config values with the file's `[streams.<name>]` tables moved to `stream_options`: a
    `streams` list (or `[streams] enabled = [...]`) is the set of streams to sync."""
    if not isinstance(data, dict) or not isinstance(data.get("streams"), dict):
        return data
    data = dict(data)
    sections = dict(data.pop("streams"))
    enabled = sections.pop("enabled", None)
    if enabled is not None:
        data["streams"] = enabled
    bad = [k for k, v in sections.items() if not isinstance(v, dict)]
    if bad:
        raise ConfigError(
            f"[streams]: {', '.join(bad)} must be a table such as [streams.{bad[0]}] "
            "(or list the streams to sync as `enabled = [...]`)"
        )
    data["stream_options"] = {**sections, **data.get("stream_options", {})}
    return data


def read_secret(path: Path) -> str:
    """The password a file holds, without the line end and byte-order mark an editor adds;
    a ValueError naming SITOO_API_PASSWORD_FILE when there is none. Only an absolute path
    is quoted back: anything else may be the password itself, set there by mistake, and
    must not reach a log line."""
    name = env_name("api_password_file")
    shown = str(path) if path.is_absolute() else "the file it names"
    try:
        secret = path.read_text(encoding="utf-8-sig").strip()
    except FileNotFoundError:
        if not path.is_absolute():
            raise ValueError(
                f"{name}: no such file in the working directory (the name is not shown: if "
                f"it is the password itself, set {env_name('api_password')} instead)"
            ) from None
        raise ValueError(f"{name}: cannot read {path}: No such file or directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"{name}: cannot read {shown}: {reason or exc}") from None
    if not secret:  # else "SITOO_API_PASSWORD is not set" would blame the wrong one
        raise ValueError(f"{name}: {shown} is empty (write the API password into it)")
    return secret


#: The shortest SITOO_PERSONAL_DATA_KEY accepted: 16 random characters are ~64-128 bits.
MIN_HASH_KEY_LENGTH = 16

#: Settings whose value is used as given, whitespace and all: the hashes' key.
_TAKEN_AS_GIVEN = frozenset({"personal_data_key"})


class Settings(BaseSettings):
    """Everything a sync needs to know, built once by the CLI and passed down as an object."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        # `SITOO_X=` (compose's `${X:-}`, a blank template value) is unset: the file's value
        # or the default applies, not an empty one.
        env_ignore_empty=True,
        # `inf` seconds reached a socket or a sleep as an OverflowError traceback.
        allow_inf_nan=False,
    )

    #: Where each setting the config file gave (and the environment did not) was written,
    #: as an error names it: `x in FILE` (`named`).
    _from_file: dict[str, str] = PrivateAttr(default_factory=dict)

    api_id: str | None = Field(None, description="Sitoo API ID, e.g. 10020-140")
    api_password: SecretStr | None = Field(None, description="Sitoo API password")
    api_password_file: Path | None = Field(None, description="file holding the API password")
    account_id: str | None = Field(None, description="account number; default: API ID prefix")
    site_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="eshop ids (sites) to sync; default: every site /sites.json lists",
    )
    api_base_url: str = DEFAULT_API_BASE_URL
    journals_base_url: str = DEFAULT_JOURNALS_BASE_URL
    zreports_base_url: str | None = Field(None, description="default: the REST v2 account base")
    target_url: str = "duckdb:///sitoo.duckdb"
    target_schema: str | None = Field(None, description="schema (database on MySQL) to load into")
    streams: Annotated[list[str] | None, NoDecode] = None
    overlap_seconds: int = Field(600, ge=0, le=30 * 86400)
    #: Each stream's own settings (`[streams.<name>]` in the config file), validated
    #: against the stream's declared options when the streams are selected.
    stream_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    personal_data: Literal["drop", "hash", "keep"] = Field(
        "drop", description="customer contact fields: drop (store nothing), hash or keep"
    )
    personal_data_key: SecretStr | None = Field(
        None,
        description="the HMAC key of SITOO_PERSONAL_DATA=hash and SITOO_STAFF_NAMES=hash "
        "(a secret)",
    )
    staff_names: Literal["keep", "hash", "drop"] = Field(
        "keep",
        description="staff names (z-reports, journal, additionaldata): keep, hash "
        "(keyed as SITOO_PERSONAL_DATA=hash) or drop",
    )
    verify_silent_days: int = Field(
        3,
        ge=1,
        le=366,
        description="verify: days without a z-report (or any data) that flag a register",
    )
    concurrency: int = Field(
        4, ge=1, le=MAX_CONCURRENCY, description="registers (and sites) fetched at the same time"
    )
    load_batch_rows: int = Field(50_000, ge=1, description="rows per load transaction, at most")
    load_batch_seconds: float = Field(2.0, ge=0, description="oldest uncommitted window, at most")
    buffer_mb: float = Field(
        32,
        ge=4,
        le=65536,
        description="memory for data in flight: pages fetched ahead and rows awaiting commit",
    )
    schedules: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description='per stream: "15m", "1h", "30s" or a cron expression'
    )
    schedule_jitter_seconds: int = Field(30, ge=0, le=3600)
    stop_timeout_seconds: float = Field(60.0, gt=0, description="graceful stop, at most")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="/metrics and /healthz")
    metrics_host: str = "127.0.0.1"
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    http_timeout_seconds: float = Field(30.0, gt=0, le=MAX_WAIT_SECONDS)
    http_max_attempts: int = Field(6, ge=1, le=20)
    http_backoff_base_seconds: float = Field(0.5, ge=0, le=MAX_WAIT_SECONDS)
    http_backoff_max_seconds: float = Field(60.0, ge=0, le=MAX_WAIT_SECONDS)

    @model_validator(mode="before")
    @classmethod
    def _stream_sections(cls, data: Any) -> Any:
        return stream_sections(data)

    @field_validator("*", mode="before")
    @classmethod
    def _trimmed(cls, value: object, info: ValidationInfo) -> object:
        """A value without the whitespace around it (a line end pasted or mounted with it),
        but the hash key as given: hashes already stored were keyed with it. Blank is the
        default, as an empty variable is unset: none where that is none (`zreports_base_url
        = ""`), loopback for `metrics_host = ""` (not every interface)."""
        if not isinstance(value, str) or info.field_name in _TAKEN_AS_GIVEN:
            return value
        value = value.strip()
        if not value and info.field_name:
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)
        return value

    @field_validator("site_ids", mode="before")
    @classmethod
    def _site_ids(cls, value: object) -> object:
        return parse_site_ids(value)

    @field_validator("streams", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("schedules", mode="before")
    @classmethod
    def _schedules(cls, value: object) -> object:
        return parse_schedules(value)

    @field_validator("api_base_url", "journals_base_url", "zreports_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        unknown = sorted(set(re.findall(r"\{[^{}]*\}", value or "")) - {"{account_id}"})
        if unknown:  # a typo such as {acount_id} would reach the API as it is (404 on all)
            raise ValueError(f"the only placeholder is {{account_id}}, got {', '.join(unknown)}")
        return value.rstrip("/") if value else value

    @field_validator("target_url")
    @classmethod
    def _target_url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be a URL such as duckdb:///sitoo.duckdb")
        return value

    @model_validator(mode="after")
    def _password_from_file(self) -> Settings:
        if self.api_password is None and self.api_password_file is not None:
            object.__setattr__(self, "api_password", SecretStr(read_secret(self.api_password_file)))
        return self

    @model_validator(mode="after")
    def _hash_needs_a_key(self) -> Settings:
        hashed = [
            f"{env_name(f)}=hash"
            for f in ("personal_data", "staff_names")
            if getattr(self, f) == "hash"
        ]
        if not hashed:
            return self
        which = " and ".join(hashed)
        key = self.personal_data_key.get_secret_value() if self.personal_data_key else ""
        if not key:
            raise ValueError(
                f"{which} need{'' if len(hashed) > 1 else 's'} {env_name('personal_data_key')}: "
                "the secret the hashes are keyed with"
            )
        if len(key) < MIN_HASH_KEY_LENGTH:
            # An email or a phone number is easy to guess: with a short key, whoever has the
            # hashes can try every key and read them back.
            named = "" if hashed == [f"{env_name('personal_data')}=hash"] else f" for {which}"
            raise ValueError(
                f"{env_name('personal_data_key')}: at least {MIN_HASH_KEY_LENGTH} characters, "
                f"random (got {len(key)}; e.g. `openssl rand -hex 32`){named}"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, so it overrides the TOML values that arrive as init kwargs."""
        return (env_settings, init_settings)

    # ---- derived values -------------------------------------------------------------

    @property
    def resolved_account_id(self) -> str:
        """The account number: explicit, or the part of the API ID before the dash."""
        if self.account_id:
            return self.account_id
        if self.api_id and "-" in self.api_id:
            return self.api_id.split("-", 1)[0]
        if not self.api_id:
            raise ConfigError(
                f"neither {env_name('account_id')} nor {env_name('api_id')} is set "
                "(the API ID, e.g. 10020-140, names the account)"
            )
        raise ConfigError(
            f"{env_name('account_id')} is not set and cannot be derived from "
            f"{env_name('api_id')} {self.api_id!r} (expected the form 10020-140)"
        )

    @property
    def v2_base_url(self) -> str:
        """REST v2 account base with the account number filled in."""
        return self.api_base_url.replace("{account_id}", self.resolved_account_id)

    @property
    def z_reports_base_url(self) -> str:
        """Base of `/pos-z-reports` and `/store-z-reports`: the v2 account base by default."""
        if self.zreports_base_url:
            return self.zreports_base_url.replace("{account_id}", self.resolved_account_id)
        return self.v2_base_url

    def require_credentials(self) -> tuple[str, str]:
        """The Basic-auth pair, or a ConfigError naming what is missing."""
        if not self.api_id:
            raise ConfigError(f"{env_name('api_id')} is not set: the Sitoo API ID, e.g. 10020-140")
        if self.api_password is None or not self.api_password.get_secret_value():
            raise ConfigError(
                f"{env_name('api_password')} is not set "
                f"(or point {env_name('api_password_file')} at a file holding it)"
            )
        self.resolved_account_id  # noqa: B018  # validates the account id early
        return self.api_id, self.api_password.get_secret_value()

    def named(self, field: str) -> str:
        """The setting `field` as the user wrote it: `field in FILE` when the config file
        gave it, else its environment variable."""
        return self._from_file.get(field) or env_name(field)

    def secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        return [
            secret.get_secret_value()
            for secret in (self.api_password, self.personal_data_key)
            if secret is not None and secret.get_secret_value()
        ]


def requested_log_format() -> str:
    """The log format the environment asks for, read on its own: the CLI configures logging
    with it before the settings are loaded, so even a configuration error is written in the
    format a log shipper expects."""
    return "json" if os.environ.get(env_name("log_format"), "").strip() == "json" else "console"


#: Names a message lists before it says how many more there are.
NAMED_AT_MOST = 5


def named_few(names: Sequence[str], at_most: int = NAMED_AT_MOST) -> str:
    """The first `at_most` of `names`, quoted, and how many more: a message naming every
    one of sixty keys would not be read (nor fit a log line)."""
    shown = ", ".join(map(repr, names[:at_most]))
    more = len(names) - at_most
    return f"{shown} and {more} more" if more > 0 else shown


def _looks_like(key: str) -> str | None:
    """The setting an unknown config key most likely means: itself in lower case without
    `SITOO_` (an environment name pasted in), or the closest spelling."""
    fields = list(Settings.model_fields)
    plain = key.lower().removeprefix(ENV_PREFIX.lower())
    if plain in fields:
        return plain
    close = get_close_matches(plain, fields, n=1, cutoff=0.8)
    return close[0] if close else None


def _unknown_keys(errors: Sequence[dict[str, Any]], path: Path | None) -> str | None:
    """The config file's keys no setting reads, named in one clause (None: there are none)."""
    keys = [str(e["loc"][0]) for e in errors if e.get("type") == "extra_forbidden" and e["loc"]]
    if not keys:
        return None
    where = f"in {path}" if path else "in the config file"
    line = f"unknown setting{'s' if len(keys) > 1 else ''} {named_few(keys)} {where}"
    meant = _looks_like(keys[0]) if len(keys) == 1 else None
    return f"{line} (did you mean {meant!r}?)" if meant else line


def _describe(error: dict[str, Any], name_of: Callable[[str], str] = env_name) -> str:
    loc = [str(part) for part in error.get("loc", ()) if not isinstance(part, int)]
    field = loc[0] if loc else ""
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    given = error.get("input")
    if not field:  # a check across fields: its message names the settings itself
        return _renamed(msg, name_of)
    # An entry of a table setting (`[schedules] orders = 5`) is named by its key too.
    name = ": ".join([name_of(field), *loc[1:]])
    if given is None or isinstance(given, dict) or field in _SECRET_FIELDS:
        return f"{name}: {msg}"  # a secret is never quoted back
    if isinstance(given, str) and field.endswith("_url"):
        # A URL's credentials, however mistyped around them (`postgresql//u:pw@db`), are not
        # quoted back either: the log's mask only knows `scheme://user@`.
        given = _USERINFO.sub("***@", given)
    return f"{name}: {msg} (got {given!r})"


def _renamed(msg: str, name_of: Callable[[str], str]) -> str:
    """A message about one setting (`SITOO_X: ...`) with that setting named as `name_of`
    names it (its key in the config file, when the file set it)."""
    head, sep, rest = msg.partition(": ")
    field = head.removeprefix(ENV_PREFIX).lower()
    if sep and head.startswith(ENV_PREFIX) and field in Settings.model_fields:
        return f"{name_of(field)}: {rest}"
    return msg


#: Settings whose value is a secret (SecretStr): an error names them, never their value.
_SECRET_FIELDS = frozenset(
    name
    for name, info in Settings.model_fields.items()
    if info.annotation is SecretStr or SecretStr in get_args(info.annotation)
)
_USERINFO = re.compile(r"[^@\s/]+@")


def _environment_sets(environ: Mapping[str, str]) -> frozenset[str]:
    """The settings `environ` gives a value (names in any case; an empty one is unset)."""
    given = {name.upper() for name, value in environ.items() if value != ""}
    return frozenset(f for f in Settings.model_fields if env_name(f) in given)


def _read_config(path: Path) -> dict[str, Any]:
    """The TOML file's values, or a ConfigError naming the file (and the line)."""
    try:
        # utf-8-sig: a byte-order mark (Windows Notepad) is not the first key
        return tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:  # a directory, a file we may not read
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from env > TOML file > defaults; `overrides` beat everything.

    Raises ConfigError with one line per problem, each naming the setting where it was
    set: `SITOO_X` for the environment, `x in FILE` for the config file.
    """
    file_values: dict[str, Any] = {}
    path = config_file or (Path(p) if (p := os.environ.get("SITOO_CONFIG")) else None)
    if path is not None:
        file_values = stream_sections(_read_config(path))
    from_env = _environment_sets(os.environ)
    if "api_password_file" in from_env and "api_password" not in from_env:
        # The password's two forms are one setting: the environment's file wins over the
        # config file's password, as the environment wins over the file everywhere.
        file_values.pop("api_password", None)
    from_file = set(file_values) - from_env

    def name_of(field: str) -> str:
        return f"{field} in {path}" if field in from_file else env_name(field)

    try:
        settings = Settings(**file_values)
        if overrides:
            settings = settings.model_copy(update=overrides)
    except ValidationError as exc:
        errors = [dict(err) for err in exc.errors()]
        lines = [_describe(e, name_of) for e in errors if e.get("type") != "extra_forbidden"]
        if unknown := _unknown_keys(errors, path):
            lines.append(unknown)
        raise ConfigError("; ".join(lines)) from None
    except SettingsError as exc:  # an environment value that must be JSON and is not
        field = m.group(1) if (m := re.search(r'field "(\w+)"', str(exc))) else ""
        name = env_name(field) if field else "an environment variable"
        raise ConfigError(f"{name}: not valid JSON") from None
    settings._from_file = {f: name_of(f) for f in from_file}
    return settings


def as_named(exc: ConfigError, settings: Settings | None) -> ConfigError:
    """`exc`, whose line starts with the environment variable it is about (`SITOO_X: ...`,
    as a check made after loading words it), naming the setting where the user wrote it:
    `x in FILE: ...` when the config file gave it."""
    head, sep, rest = str(exc).partition(": ")
    if settings is None or not sep or not re.fullmatch(rf"{ENV_PREFIX}[A-Z0-9_]+", head):
        return exc
    named = settings.named(head.removeprefix(ENV_PREFIX).lower())
    return exc if named == head else ConfigError(f"{named}: {rest}")
