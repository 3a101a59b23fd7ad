"""The one place logging is configured (structlog for our events, and the standard `logging`
that other libraries write to), with the processor that keeps secrets, and the rows a
database quotes in its errors, out of logs.

Events are constant snake_case names with context fields:
`log.info("window_loaded", stream="pos_z_reports", partition="1500", rows=500, cursor=...)`.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog

REDACTED = "***"
_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|api_key|credential", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)
#: A URL's query parameter (or a `;`-separated connection-string field inside one, also
#: %-encoded, as SQL Server's `odbc_connect` has) whose name says it holds a secret:
#: `password`, `db_password`, `passwd`, `PWD`, `api_key`, `access_token`, `client_secret`
#: ... as whole words (`passthrough`, `tokenizer` are not), up to the next field.
_SECRET_PARAM = re.compile(
    r"(?P<key>(?:[?&;]|%3B|%26)(?:[a-z0-9]*[_-])*"
    r"(?:pass(?:word)?|passwd|pwd|secret|token|api[_-]?key|apikey|credentials?|sig)"
    r"(?:[_-][a-z0-9]*)*(?:=|%3D))"
    r"(?:(?!%3B|%26)[^&;#\s])*",
    re.I,
)

#: The lines of a PostgreSQL error that quote row values, which may be personal data: the
#: failing row (`DETAIL:  Failing row contains (...)`, `Key (email)=(...) already exists`)
#: and the COPY line being read (`CONTEXT:  COPY people, line 5: "..."`).
_QUOTED_ROW = re.compile(r"^[ \t]*(?:DETAIL|CONTEXT):.*(?:\n|$)", re.M)


def mask_secret_params(text: str) -> str:
    """`text` with the value of every secret-named URL query parameter replaced by `***`
    (a password given as `?password=` in a target URL, say)."""
    return _SECRET_PARAM.sub(rf"\g<key>{REDACTED}", text)


class RedactSecrets:
    """Processor: masks secret-named keys, known secret values and URL credentials, and drops
    the lines of a database error that quote row values (in a traceback too)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _clean(self, value: object) -> object:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, REDACTED)
            value = _QUOTED_ROW.sub("", value).rstrip("\n") if "\n" in value else value
            return mask_secret_params(_URL_USERINFO.sub(rf"\g<scheme>{REDACTED}@", value))
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


_status_line: list[Callable[[], str]] = []  # at most one: a process has one terminal


def show_status_line(render: Callable[[], str] | None) -> None:
    """While a terminal shows a line that is rewritten in place (backfill progress), each log
    line first clears it and then draws it again below itself, so the two never run into one
    another; None ends that."""
    _status_line[:] = [render] if render is not None else []


def end_status_line() -> None:
    """End the line rewritten in place, if one is shown, where it stands (it is not drawn
    again), so that a line printed next (a command's error) starts a line of its own."""
    if _status_line:
        _status_line.clear()
        sys.stderr.write("\n")


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the moment (it is swapped by test runners)."""

    def write(self, text: str) -> int:
        if not _status_line:
            return sys.stderr.write(text)
        written = sys.stderr.write(f"\r\033[K{text}")
        if text.endswith("\n"):
            sys.stderr.write(_status_line[0]())
        return written

    def flush(self) -> None:
        sys.stderr.flush()


# Libraries that log through the standard `logging` module, and the level below which they
# are noise: httpx logs one INFO line per request, APScheduler two per job run.
QUIET_LIBRARIES = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "apscheduler": logging.WARNING,
}

_handler: logging.Handler | None = None
_json = False


def _add_foreign_logger_name(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor for lines of other libraries: which logger wrote it (`httpx`, `py.warnings`)."""
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        event_dict["logger"] = record.name
        if record.name == "py.warnings":
            # "file:line: Category: message\n  <source line>\n": the first line says it all.
            event_dict["event"] = str(event_dict["event"]).strip().splitlines()[0]
    return event_dict


class _OneLineConsole:
    """The console renderer, every event one line, so that a log shipper or `grep` reading
    lines sees each event whole: a library's multi-line message (tzlocal's DEBUG lines put
    a file's contents below their first line) is joined with spaces; a traceback and a
    stack, which the renderer prints below the line, become fields it quotes with their
    line breaks escaped; any line break left (an object whose repr spans lines) is escaped
    as a backslash and n."""

    def __init__(self) -> None:
        self._render = structlog.dev.ConsoleRenderer(colors=False)

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        event = event_dict.get("event")
        if isinstance(event, str):
            event_dict["event"] = " ".join(filter(None, (p.strip() for p in event.splitlines())))
        for key, field in (("exception", "traceback"), ("stack", "stack_trace")):
            if key in event_dict:
                event_dict[field] = event_dict.pop(key)
        return "\\n".join(self._render(logger, method_name, dict(event_dict)).splitlines())


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    """`sys.excepthook`: an unexpected crash is one event too, not a bare traceback."""
    structlog.get_logger("sitoo_sync").critical(
        "unhandled_exception", exc_info=(kind, value, traceback)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    """`threading.excepthook`: likewise for a thread that dies of an exception."""
    if args.exc_value is not None:
        thread = args.thread.name if args.thread else None
        structlog.get_logger("sitoo_sync").critical(
            "unhandled_exception",
            thread=thread,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )


def configure_logging(
    *,
    fmt: str = "console",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure logging once for the process: JSON or console lines to stderr.

    Our structlog events and every line of other libraries (standard `logging`, `warnings`,
    an uncaught exception) go through one handler, one set of processors (timestamp, level,
    secret redaction) and one renderer, so with `json` every line is one JSON object.
    """
    global _handler, _json  # logging is process-wide state by nature
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = _OneLineConsole()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        # Redaction runs after exceptions are rendered to text, so a secret inside a
        # traceback is masked too, and before the renderer, so nothing escapes it.
        RedactSecrets(secrets),
    ]
    handler = logging.StreamHandler(stream or _CurrentStderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_add_foreign_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    numeric_level = logging.getLevelName(level)
    handler.setLevel(numeric_level)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    _handler, _json = handler, fmt == "json"
    for name, quiet in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def logs_are_json() -> bool:
    """Whether `configure_logging` was last asked for JSON lines."""
    return _json


def get_logger(name: str) -> Any:
    """A lazy logger bound to the module name, for `log.info("event", **fields)`.

    Lazy: it picks up `configure_logging()` even when created at import time.
    """
    return structlog.get_logger(name, module=name)
