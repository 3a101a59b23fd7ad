"""The errors sitoo_sync raises, each carrying the context an operator needs.

    SitooSyncError                 root: every error the package raises on purpose
    ├── ConfigError                a setting is missing or invalid (CLI exit code 2)
    ├── ApiError                   an HTTP exchange with Sitoo failed
    │   ├── RetriableError         429, 5xx, transport trouble: retried until the budget is spent
    │   ├── FatalApiError          400, 404 and friends: retrying cannot help
    │   │   └── AuthError          401/403: the API ID or password is wrong
    │   │       └── RefusedEarlier a request not sent: Sitoo refused the credentials moments ago
    │   ├── RetryBudgetExhausted   a retriable failure that outlived the retry budget
    │   └── StopRequested          a retriable failure not tried again: a stop was requested
    ├── WarehouseError             the target database failed (locked, down, rejected SQL)
    ├── SchemaTooNew               a newer sitoo-sync upgraded the warehouse: no write from this one
    ├── DisabledStream             the account has the stream turned off: not a failure
    ├── RecordRejected             one record failed validation; it goes to `rejects`
    └── StuckWindowError           a window cannot advance and cannot be split further

Context fields (`stream`, `partition`, `url`, `status`) are keyword-only so the message
an operator reads always says *where* it happened; URLs never carry credentials.
"""

from __future__ import annotations


class SitooSyncError(Exception):
    """Root of every error raised on purpose; `str()` includes the context fields."""

    def __init__(
        self,
        message: str,
        *,
        stream: str | None = None,
        partition: str | None = None,
        url: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.stream = stream
        self.partition = partition
        self.url = url
        self.status = status

    def context(self) -> dict[str, object]:
        """The non-empty context fields, for structured log events."""
        fields = {
            "stream": self.stream,
            "partition": self.partition,
            "url": self.url,
            "status": self.status,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def __str__(self) -> str:
        ctx = self.context()
        if not ctx:
            return self.message
        detail = ", ".join(f"{k}={v}" for k, v in ctx.items())
        return f"{self.message} ({detail})"


class ConfigError(SitooSyncError):
    """A setting is missing or invalid; the message names the setting."""


class ApiError(SitooSyncError):
    """An HTTP exchange with Sitoo failed."""


class RetriableError(ApiError):
    """A failure worth retrying: 429, 5xx, a dropped connection or a timeout."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        stream: str | None = None,
        partition: str | None = None,
        url: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, stream=stream, partition=partition, url=url, status=status)
        self.retry_after = retry_after


class FatalApiError(ApiError):
    """A failure that retrying cannot fix (bad request, unknown resource)."""


class AuthError(FatalApiError):
    """Sitoo refused the credentials (401/403)."""


class RefusedEarlier(AuthError):
    """A request that was not sent: Sitoo refused the credentials (401) moments before, so
    the partition fails without asking again (and without a line of its own: the refusal
    was said once, by the request that met it)."""


class RetryBudgetExhausted(ApiError):
    """A retriable failure that kept failing after every allowed attempt."""


class StopRequested(ApiError):
    """A request failed after a stop was requested (SIGTERM), so it was not tried again: the
    stop's doing, not the API's; the partition ends as at a stop between its windows."""


class WarehouseError(SitooSyncError):
    """The target database failed; the run stops, the warehouse keeps its last commit."""


class SchemaTooNew(SitooSyncError):
    """The warehouse was upgraded by a newer sitoo-sync (a newer schema revision) than this
    process: it writes nothing there until it is upgraded too (CLI exit code 2)."""


class DisabledStream(SitooSyncError):
    """The account has this stream switched off; the tick reports it and moves on."""


class RecordRejected(SitooSyncError):
    """One record failed validation; it is kept in `rejects` with this reason."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.field = field

    @property
    def reason(self) -> str:
        """The reason as stored in `rejects`: the field first when known."""
        return f"{self.field}: {self.message}" if self.field else self.message


class ContextUnavailable(SitooSyncError):
    """What records need from their tick's context could not be read in this tick (a site's
    time zone): their partition fails and reads them again next tick, rather than load them
    without it."""


class StuckWindowError(SitooSyncError):
    """A window came back full and no split is left that could make it smaller."""


def first_line(exc: BaseException) -> str:
    """What went wrong, in one line: the first line of the driver's own message (a DB-API
    error inside SQLAlchemy's wrapper, whose text goes on with the statement and a help
    link), else of `exc`'s; the exception's type when it says nothing."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
