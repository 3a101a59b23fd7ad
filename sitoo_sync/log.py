"""The one place structlog is configured, with the processor that keeps secrets out of logs.

Events are constant snake_case names with context fields:
`log.info("window_loaded", stream="pos_z_reports", partition="1500", rows=500, cursor=...)`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "***"
_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|api_key|credential", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)


class RedactSecrets:
    """Processor: masks secret-named keys, known secret values and URL credentials."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _clean(self, value: object) -> object:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, REDACTED)
            return _URL_USERINFO.sub(rf"\g<scheme>{REDACTED}@", value)
        if isinstance(value, dict):
            return {k: self._clean_item(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        if isinstance(value, BaseException):
            return self._clean(str(value))
        return value

    def _clean_item(self, key: object, value: object) -> object:
        if isinstance(key, str) and _SECRET_KEYS.search(key) and value is not None:
            return REDACTED
        return self._clean(value)

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            event_dict[key] = self._clean_item(key, event_dict[key])
        return event_dict


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the moment (it is swapped by test runners)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    *,
    fmt: str = "console",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog once for the process: JSON or console lines to stderr."""
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            # Redaction runs after exceptions are rendered to text, so a secret inside a
            # traceback is masked too, and before the renderer, so nothing escapes it.
            RedactSecrets(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream or _CurrentStderr()),  # type: ignore[arg-type]  # any object with write/flush will do
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A lazy logger bound to the module name, for `log.info("event", **fields)`.

    Lazy: it picks up `configure_logging()` even when created at import time.
    """
    return structlog.get_logger(module=name)
