"""A stream's own settings: declared on the stream, typed, read from TOML or the environment.

A stream declares each of its settings as an `Option` named after a field of its cursor
strategy (`lookback_days` of `DayWindows`, `start` of `CursorPages` ...), so the option
*is* the strategy's typed parameter and its default is the strategy's. Where a value comes
from, first found wins:

1. the environment: `SITOO_<STREAM>_<OPTION>` (e.g. `SITOO_STORE_Z_REPORTS_LOOKBACK_DAYS`),
   or one of the option's older `aliases` (e.g. `SITOO_JOURNAL_START`); a blank one is
   unset, as a blank setting is;
2. the config file: `[streams.<stream>]` with `<option> = value`;
3. the strategy's default.

A bad value is a one-line ConfigError naming where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from sitoo_sync.errors import ConfigError
from sitoo_sync.settings import ENV_PREFIX, named_few

#: Settings every stream has besides its own options (handled by the service).
COMMON = ("schedule",)


@dataclass(frozen=True)
class Option:
    """One setting of a stream: the cursor strategy's field `name`, its type and bounds."""

    name: str
    type: Any  # a type pydantic validates: int, date, date | None ...
    description: str
    ge: int | None = None
    le: int | None = None
    #: Older environment variable names that still work.
    aliases: tuple[str, ...] = ()

    def env_names(self, stream: str) -> tuple[str, ...]:
        """Where the environment may set it, the regular name first."""
        return (f"{ENV_PREFIX}{stream}_{self.name}".upper(), *self.aliases)

    def validate(self, raw: Any, source: str) -> Any:
        """`raw` as the option's type, or a ConfigError naming `source`."""
        bounded: Any = Annotated[
            self.type, Field(ge=self.ge, le=self.le)
        ]  # a type built at runtime
        adapter: TypeAdapter[Any] = TypeAdapter(bounded)
        try:
            return adapter.validate_python(raw)
        except ValidationError as exc:
            msg = exc.errors()[0].get("msg", "invalid") if exc.errors() else "invalid"
            raise ConfigError(f"{source}: {msg} (got {raw!r})") from None


def option_values(
    stream: str,
    options: Sequence[Option],
    given: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The options of `stream` that are set (environment over `given`, the stream's TOML
    section), validated; options left unset keep the strategy's default."""
    env = os.environ if environ is None else environ
    known = {o.name for o in options}
    unknown = sorted(set(given) - known - set(COMMON))
    if unknown:
        offered = ", ".join([*sorted(known), *COMMON])
        raise ConfigError(
            f"[streams.{stream}]: unknown setting {named_few(unknown)} (known: {offered})"
        )
    values: dict[str, Any] = {}
    for option in options:
        found = next(
            ((n, env[n].strip()) for n in option.env_names(stream) if env.get(n, "").strip()),
            None,
        )
        if found is not None:
            name, raw = found
            values[option.name] = option.validate(raw, name)
        elif option.name in given:
            source = f"[streams.{stream}] {option.name}"
            values[option.name] = option.validate(given[option.name], source)
    return values
