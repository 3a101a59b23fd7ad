"""`sitoo-sync`: the commands. Builds objects from settings and hands them on; no logic here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sitoo_sync import __version__, allocator, teardown
from sitoo_sync.errors import ConfigError, SchemaTooNew, SitooSyncError
from sitoo_sync.health import HEALTHY_WITHIN_INTERVALS
from sitoo_sync.log import (
    RedactSecrets,
    configure_logging,
    end_status_line,
    get_logger,
    logs_are_json,
)
from sitoo_sync.settings import (
    Settings,
    as_named,
    env_name,
    load_settings,
    requested_log_format,
)
from sitoo_sync.warehouse import masked_url

if TYPE_CHECKING:
    from sitoo_sync.streams.base import Stream

_TARGET_URL = env_name("target_url")  # what --target replaces
_SCHEMA = env_name("target_schema")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = get_logger(__name__)
#: What masks a console line of `_say` as the log masks an event's text: URL credentials and
#: secret query parameters (a setting quoted back in an error may hold them).
_redact = RedactSecrets()

DESCRIPTION = """\
Keep a data warehouse in step with Sitoo: every stream below, loaded incrementally into
DuckDB (default) or any SQLAlchemy database with exactly-once guarantees.

Configuration comes from SITOO_* environment variables, or a TOML file given with
--config / SITOO_CONFIG (environment wins). See config/sitoo-sync.example.toml.

Exit codes: 0 success; 1 a stream failed or the warehouse or the API cannot be reached
(see the log), and for verify findings and status --check a stream failing or late;
2 bad configuration or usage, including credentials Sitoo refuses.
"""

EPILOG = """\
examples:
  sitoo-sync demo                      try it: fake Sitoo API -> ./sitoo-demo.duckdb
  sitoo-sync run                       the service: every stream on its schedule
  sitoo-sync run --once                one sync tick of every enabled stream (cron)
  sitoo-sync status                    cursors and health per stream
  sitoo-sync reset {reset_example} --since 2026-11-01
                                       read again from a day on (rows are kept)
  sitoo-sync simulator --port 8080     the fake Sitoo API alone, to poke with curl
  sitoo-sync bench                     backfill benchmark against the simulator
"""


def _default_schedules() -> str:
    """Every stream's default schedule, from the stream registry: `name every`, ..."""
    from sitoo_sync.streams import STREAMS

    return ", ".join(f"{s.name} {s.default_schedule}" for s in STREAMS.values())


def _stream_help() -> str:
    """The streams section of `--help`, read from the registry: what each loads, how often
    by default, what one cursor covers, and its own settings with their variables."""
    from sitoo_sync.streams import STREAMS

    lines = ["streams (SITOO_STREAMS; default: every stream not marked opt-in):"]
    width = max(len(name) for name in STREAMS) + 2
    for stream in STREAMS.values():
        opt_in = ", opt-in" if not stream.enabled_by_default else ""
        lines.append(
            f"  {stream.name:<{width}}every {stream.default_schedule}, one cursor per "
            f"{stream.partitions.kind}{opt_in}"
        )
        lines.append(f"  {'':<{width}}{stream.description}")
        for option in stream.options:
            lines.append(f"  {'':<{width}}{option.env_names(stream.name)[0]}: {option.description}")
    return "\n".join(lines)


def _resettable() -> list[str]:
    """The streams whose cursors `reset` can move (full listings have none)."""
    from sitoo_sync.streams import STREAMS

    return [s.name for s in STREAMS.values() if not s.full_refresh]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (where, what, and where help is), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:  # noqa: PLR0915  # one declaration per option
    fmt = argparse.RawDescriptionHelpFormatter
    epilog = EPILOG.format(reset_example=_resettable()[0]) + "\n" + _stream_help() + "\n"
    parser = _Parser(prog="sitoo-sync", description=DESCRIPTION, epilog=epilog, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"sitoo-sync {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML settings file (default: $SITOO_CONFIG); environment variables override it",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="sync every enabled stream into the target (service, or --once for cron)",
        description="Sync every enabled stream (SITOO_STREAMS) from Sitoo into "
        "SITOO_TARGET_URL.\n\n"
        "Without --once: a long-lived service. Each stream runs on its schedule "
        f"(SITOO_SCHEDULES, e.g. {_resettable()[0]}=15m; defaults: "
        f"{_default_schedules()}), first at start. SIGTERM/SIGINT stop it gracefully; "
        "SITOO_METRICS_PORT serves /metrics (Prometheus) and /healthz.\n\n"
        "With --once: one tick, then exit (cron, systemd timer, Kubernetes CronJob); exit "
        "code 0 only when every stream succeeded. SIGTERM/SIGINT stop it after the window in "
        "flight commits (exit 0; the next run continues from there). On a terminal it shows "
        "each stream's progress; otherwise it logs backfill_progress every few seconds.\n\n"
        "Either way a stream is loaded by one process at a time per target: a tick that finds "
        "another holding the stream's lock skips it.",
        formatter_class=fmt,
    )
    run.add_argument("--once", action="store_true", help="run one tick and exit")

    demo = sub.add_parser(
        "demo",
        help="sync the bundled simulator into a local DuckDB file and show the result",
        description="Start the bundled fake Sitoo API on a free loopback port, sync it into a "
        "DuckDB file, and print what was loaded: rows per table, sales per store, and SQL to "
        "try next. Needs no credentials and no network.",
        formatter_class=fmt,
    )
    demo.add_argument(
        "--db",
        type=Path,
        default=Path("sitoo-demo.duckdb"),
        help="DuckDB file to write (default: %(default)s; an earlier demo's is replaced, any "
        "other file refused)",
    )
    demo.add_argument(
        "--days", type=_days, default=30, help="days of POS history to simulate (default: 30)"
    )
    demo.add_argument("--seed", type=int, default=1, help="seed of the simulated data (default: 1)")
    demo.add_argument(
        "--chaos",
        action="store_true",
        help="make the simulator hostile: random 429/5xx/dropped connections",
    )

    status = sub.add_parser(
        "status",
        help="show status, cursor, lag, last success and rows per stream and partition",
        description="Read sync_state from the target: per stream and partition, how the last "
        "tick ended (ok, failed, disabled, gone: Sitoo deleted it; or reset by `reset`) and "
        "why, the cursor and how far it is behind now, when it last succeeded, the rows "
        "loaded so far and the last error. A failure before any partition was known (the "
        "register listing) shows as partition *. Then each stream's last run (sync_runs): "
        "when it started, how it ended (ok, failed, partial, disabled, running, or "
        "interrupted when its process is gone), rows, requests and how long it took. It only "
        "reads: a missing DuckDB file is reported, never created.",
        formatter_class=fmt,
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--target", metavar="URL", help="read this target instead of SITOO_TARGET_URL"
    )
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a stream is failing, or late: its last success is older than "
        f"{HEALTHY_WITHIN_INTERVALS} of its schedule's intervals (as /healthz decides)",
    )

    reset = sub.add_parser(
        "reset",
        help="move a stream's cursor back so the next tick reads again (no rows are deleted)",
        description="Move the cursor of every partition of STREAM (or of one, --partition) back "
        "to a day (--since), or clear it so the next tick starts as a first one does "
        "(where the stream's own start setting says, or the beginning). Nothing is "
        "deleted: what is read again is upserted on its key and its children replaced as a "
        "set, so a reset only adds what was missing and corrects what changed. Use it to "
        "re-load a period, or to backfill from an earlier day. It waits for no tick: if one "
        "is loading STREAM it says so and exits 1; run it again afterwards.",
        formatter_class=fmt,
    )
    reset.add_argument("stream", metavar="STREAM", help=", ".join(_resettable()))
    reset.add_argument(
        "--partition",
        metavar="KEY",
        help="only this partition: a register GUID, a site id ... (see `sitoo-sync status`)",
    )
    reset.add_argument(
        "--since",
        type=_day,
        metavar="YYYY-MM-DD",
        help="read again from this day on (UTC; the overlap or lookback comes on top); never "
        "past where the stream has read to; default: from the start",
    )

    simulator = sub.add_parser(
        "simulator",
        help="run the fake Sitoo API alone",
        description="Serve the bundled fake Sitoo API until interrupted. It prints the "
        "SITOO_* variables that point sitoo-sync at it.",
        formatter_class=fmt,
    )
    simulator.add_argument(
        "--port",
        type=_port,
        default=8765,
        help="TCP port (default: %(default)s; 0 = any free port)",
    )
    simulator.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    simulator.add_argument(
        "--days", type=_days, default=30, help="days of history (default: %(default)s)"
    )
    simulator.add_argument(
        "--reports",
        type=_at_least(1, "z-reports"),
        help="generate this many z-reports (more days as needed)",
    )
    simulator.add_argument(
        "--seed", type=int, default=1, help="seed of the data (default: %(default)s)"
    )
    simulator.add_argument(
        "--registers-per-store",
        type=_at_least(1, "registers"),
        default=2,
        help="registers in each store (default: %(default)s)",
    )
    simulator.add_argument(
        "--malformed-every",
        type=_at_least(0, "z-reports"),
        default=0,
        help="corrupt every Nth z-report (0 = none)",
    )
    simulator.add_argument(
        "--error-rate", type=_share, default=0.0, help="share of requests that fail (0..1)"
    )
    simulator.add_argument(
        "--latency", type=_seconds, default=0.0, help="seconds added per request"
    )
    simulator.add_argument(
        "--journal-entries",
        dest="lazy_journal_size",
        type=_at_least(0, "entries"),
        default=0,
        metavar="N",
        help="journals of N entries over the registers, made per page (0 = from the z-reports)",
    )

    bench = sub.add_parser(
        "bench",
        help="time a full POS z-report backfill against the simulator",
        description="Start the simulator in its own process, then time (a) fetching and "
        "parsing every page alone (the floor) and (b) a full backfill into a fresh native DuckDB "
        "file and into each --target; print rows/s, child rows/s, the ratio to the floor, and "
        "peak RSS. Figures are printed, not asserted.",
        formatter_class=fmt,
    )
    bench.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="URL",
        help="also load into this target (repeatable; e.g. postgresql://postgres@127.0.0.1/test); "
        "each round uses a fresh schema there, dropped afterwards",
    )
    bench.add_argument(
        "--reports",
        type=_at_least(1, "z-reports"),
        default=20000,
        help="z-reports to backfill (default: %(default)s)",
    )
    bench.add_argument(
        "--rounds",
        type=_at_least(1, "rounds"),
        default=2,
        help="rounds; the best of each is kept (default: %(default)s)",
    )
    bench.add_argument(
        "--journals",
        action="store_true",
        help="instead: a journal tick over 51 registers at 100 ms latency, concurrency 1 vs 4",
    )
    bench.add_argument(
        "--verify",
        action="store_true",
        help="instead: time `verify` over a year of z-reports of 300 registers (DuckDB)",
    )
    bench.add_argument(
        "--journal-latency",
        action="store_true",
        help="instead: journal backfill and no-op tick over 201 registers at 100 ms latency, "
        "at concurrency 4, 16 and 32, against the latency limit and a plain client making the "
        "same requests",
    )
    bench.add_argument(
        "--replicas",
        type=_at_least(2, "replicas"),
        metavar="N",
        help="instead: a journal backfill over 201 registers at 100 ms latency by one "
        "`run --once`, then by N at once, on the --target server they share, at each "
        "--concurrencies per replica",
    )
    bench.add_argument(
        "--journal-scale",
        type=_counts,
        metavar="N,N,...",
        help="instead: journal backfills of N entries (e.g. 100000,1000000,5000000) into DuckDB "
        "beside the journal fetch floor, with peak RSS, at each --concurrencies",
    )
    bench.add_argument(
        "--chain",
        action="store_true",
        help="instead: every scale figure in one run (z-report floor, journals at 100k/1M/5M "
        "entries and concurrency 4/32 with peak RSS, latency at 4/16/32, and replicas when a "
        "server --target is given), each beside its floor or limit and goal; ~30 min",
    )
    bench.add_argument(
        "--concurrencies",
        type=_counts,
        metavar="C,C,...",
        help="the SITOO_CONCURRENCY values: with --journal-scale (default 4,32), and per "
        "replica with --replicas (default 1,4)",
    )
    bench.add_argument(
        "--registers-per-store",
        type=_at_least(1, "registers"),
        default=12,
        help="with --journal-scale: registers in each of the 5 stores (12 = 61 registers)",
    )
    bench.add_argument(
        "--phase", choices=("floor", "sync", "journal-floor", "tick-floor"), help=argparse.SUPPRESS
    )

    verify = sub.add_parser(
        "verify",
        help="check the loaded z-reports and journals the way a controller would",
        description="Check the warehouse the way a retail controller does by hand: z-report "
        "numbering, grand-total continuity, the vendor's arithmetic, cash differences, store "
        "z-reports against their POS z-reports, journals against z-reports, silent "
        "registers. Reads only the warehouse (no API calls). Prints a summary (with the "
        "z-reports the checks judged) and the findings, most severe first, and writes them "
        "to the verify_findings table.\n\n"
        "Exit codes: 0 nothing found (or only findings below --fail-on), 1 findings (or no "
        "z-reports in the warehouse to verify), 2 bad configuration or usage.",
        formatter_class=fmt,
    )
    verify.add_argument(
        "--since",
        type=_day,
        metavar="YYYY-MM-DD",
        help="only z-reports of this business day (their local day) or later",
    )
    verify.add_argument("--store", metavar="ID", help="only this store_id (or NO_STORE)")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.add_argument(
        "--fail-on",
        choices=("warning", "error", "critical"),  # verify/findings.py's Severity
        default="warning",
        help="exit 1 only for a finding this severe or worse (default: warning, any finding; "
        "error lets the everyday cash differences, warnings, pass a cron job)",
    )
    verify.add_argument(
        "--metrics-file",
        type=Path,
        metavar="PATH",
        help="also write sitoo_verify_findings{check,severity} here, in Prometheus text "
        "format (for node_exporter's textfile collector)",
    )
    docs = sub.add_parser(
        "docs",
        help="print the data dictionary: every table and column with its meaning",
        description="Print the data dictionary rendered from the table declarations: "
        "markdown (as docs/tables.md), or with --format dbt a dbt sources.yml with "
        "descriptions and unique/not_null tests on the keys. Needs no configuration.",
        formatter_class=fmt,
    )
    docs.add_argument(
        "--format",
        choices=("markdown", "dbt"),
        default="markdown",
        help="markdown (the default, as docs/tables.md) or a dbt sources.yml",
    )
    docs.add_argument(
        "--output", "-o", type=Path, metavar="PATH", help="write here instead of stdout"
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from sitoo_sync.streams import unknown_environment

    settings = load_settings(args.config)
    args.loaded_settings = settings  # a later configuration error names its settings by it
    for name, close in unknown_environment(os.environ).items():
        log.warning("unknown_setting", variable=name, did_you_mean=close, action="ignored")
    return settings


def _configure_logs(settings: Settings, *, level: str | None = None) -> None:
    configure_logging(
        fmt=settings.log_format, level=level or settings.log_level, secrets=settings.secrets()
    )


def _say(event: str, text: str, *, error: bool = False, **fields: Any) -> None:
    """A line for people (stdout, or stderr for an error); with JSON logs, one event instead
    (`event`, the line as `message`, and `fields`), so a log shipper reads every line."""
    if logs_are_json():
        (log.error if error else log.info)(event, message=text, **fields)
    else:  # printed, not logged: masked here as the log's processor masks an event
        end_status_line()  # a tick's progress line, left by an error
        print(
            _redact(None, "", {"message": text})["message"],
            file=sys.stderr if error else sys.stdout,
        )


def cmd_run(args: argparse.Namespace) -> int:
    """`run`: the service; `run --once`: one tick of every enabled stream."""
    from sitoo_sync.api.client import make_client
    from sitoo_sync.service import stream_schedules
    from sitoo_sync.start_checks import check_credentials
    from sitoo_sync.streams import select_streams
    from sitoo_sync.warehouse import open_warehouse

    settings = _settings(args)
    _configure_logs(settings)
    # Every stream's own settings are checked now, not at its first tick: a misspelt key
    # must stop the service at its start, not fail that stream's every tick.
    streams = select_streams(settings.streams, settings.stream_options)
    stream_schedules(settings, streams)  # `run --once` refuses what `run` refuses
    settings.require_credentials()  # before the target is opened, locked or created
    # The target's URL, driver and directory are checked (nothing is connected or created)
    # before the API is asked anything.
    open_warehouse(settings.target_url, schema=settings.target_schema).close()
    with make_client(settings) as client:
        # One request, before the warehouse is touched; an API out of reach ends one tick
        # here, while the service goes on to its schedule (the API may come back).
        check_credentials(settings, client, unreachable_is_fatal=args.once)
    if not args.once:
        from sitoo_sync.service import Service

        return Service(settings, streams).run()
    return _run_once(settings, streams)


def _run_once(settings: Settings, streams: list[Any]) -> int:
    import signal
    import threading

    from sitoo_sync.api.client import make_client
    from sitoo_sync.locks import shares_partitions
    from sitoo_sync.progress import Progress
    from sitoo_sync.sync import run_once
    from sitoo_sync.warehouse import open_warehouse

    warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
    locks = {
        s.name: warehouse.lock(s.name, shared=shares_partitions(settings, s.name)) for s in streams
    }
    stop = threading.Event()
    stopped_by: list[str] = []

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():  # a second signal: leave now; the last committed window stands
            os._exit(130)
        stopped_by.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        runnable = [s for s in streams if locks[s.name] is not None]
        for name in (n for n, lock in locks.items() if lock is None):
            _say(
                "stream_skipped",
                f"{name}: skipped, another sitoo-sync holds its lock on this target",
                stream=name,
            )
        if not runnable:
            warehouse.close()
            return EXIT_OK
        # A stream lock the server lets go of (it ended the session it lived on) stops the
        # run after the windows under way, as a signal does: another process may hold it now.
        for lock in locks.values():
            if lock is not None:
                lock.watch(stop)
        # A line rewritten in place suits a person at a terminal, not JSON logs: those get
        # backfill_progress events instead.
        live = sys.stderr.isatty() and settings.log_format == "console"
        progress = Progress(sys.stderr, live=live)

        def backoff(seconds: float) -> None:  # a stop request cuts a retry's wait short
            stop.wait(seconds)

        with make_client(settings, sleep=backoff, stop=stop) as client:
            report = run_once(settings, warehouse, client, runnable, on_window=progress, stop=stop)
        progress.done()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for lock in locks.values():
            if lock is not None:
                lock.release()
    for line in report.summary():
        _say("stream_summary", line)
    if stop.is_set() and not stopped_by:  # set by no signal: by a lock's watch
        _say(
            "run_failed",
            "sitoo-sync: a stream's lock was lost (the database ended the session it lived "
            "on): stopped after the windows under way, which are committed; run again",
            error=True,
        )
        return EXIT_FAILED
    if stopped_by:
        _say(
            "run_stopped_early",
            f"stopped early on {stopped_by[0]}: every window loaded so far is committed; "
            "the next run continues from there",
            signal=stopped_by[0],
        )
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    """`status`: sync_state as a table or JSON; with --check, exit 1 on a problem."""
    from sitoo_sync import status

    settings = _settings(args)
    if args.target:
        if "://" not in args.target:
            raise ConfigError(
                f"--target: must be a URL such as duckdb:///sitoo.duckdb (got {args.target!r})"
            )
        settings = settings.model_copy(update={"target_url": args.target})
    _configure_logs(settings, level="WARNING")
    with _existing_warehouse(
        settings,
        read_only=True,
        hint="run `sitoo-sync run --once` first (or point --target / SITOO_TARGET_URL at it; "
        "the demo writes duckdb:///sitoo-demo.duckdb)",
        url_from="--target" if args.target else _TARGET_URL,
    ) as warehouse:
        states = status.current_states(warehouse.states())
        runs = status.last_runs(warehouse.last_runs())
        sites = status.stored_sites_of(settings, warehouse.latest_values) if args.check else {}
        listed = status.listed_since_of(settings, warehouse.latest_values) if args.check else {}
    now = datetime.now(UTC)
    problems = (
        status.stream_problems(settings, states, now, sites, listed, runs=runs)
        if args.check
        else []
    )
    if args.json:
        print(json.dumps(status.as_records(states, now, runs), indent=2))
        for problem in problems:  # beside the document: stderr, as an event in a JSON log
            stream = problem.split(":", 1)[0]
            _say("status_check_failed", f"check: {problem}", error=True, stream=stream)
    else:
        # The schema too: a mistyped one is a place nothing was synced into, not an error.
        schema = f" ({_SCHEMA}={settings.target_schema})" if settings.target_schema else ""
        nothing = f"nothing synced yet into {masked_url(settings.target_url)}{schema}"
        for line in status.as_text(states, runs, now, nothing=nothing):
            print(line)
    if args.check and not args.json:
        if runs:
            print()
        for problem in problems:
            print(f"check: {problem}")
        if not problems:
            print("check: every enabled stream is ok")
    return EXIT_FAILED if problems else EXIT_OK


@contextmanager
def _existing_warehouse(
    settings: Settings,
    *,
    read_only: bool = False,
    hint: str = "",
    url_from: str = _TARGET_URL,
    create: bool = False,
) -> Iterator[Any]:
    """The target, which must exist already (unless `create`); its driver's errors become
    one line naming it (password masked), and it is closed afterwards. A URL that cannot be
    used is refused naming `url_from`, where the user gave it (`--target` rather than
    SITOO_TARGET_URL)."""
    from sitoo_sync.warehouse import (
        given_as,
        open_existing_warehouse,
        open_warehouse,
        unreachable,
    )

    try:
        if create:
            warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
        else:
            warehouse = open_existing_warehouse(
                settings.target_url, schema=settings.target_schema, read_only=read_only, hint=hint
            )
    except ConfigError as exc:
        if url_from == _TARGET_URL:
            raise
        raise given_as(exc, url_from) from None
    try:
        yield warehouse
    except warehouse.errors as exc:
        raise unreachable(settings.target_url, exc) from None
    finally:
        warehouse.close()


def _counts(text: str) -> tuple[int, ...]:
    """A comma-separated list of positive integers, e.g. `100000,1000000`."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 4,32, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _whole(text: str, what: str) -> int:
    """`text` as an integer, or a usage error saying it is not `what`."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def _at_least(least: int, what: str) -> Callable[[str], int]:
    """An argument type: a whole number of `what`, at least `least`."""

    def parse(text: str) -> int:
        value = _whole(text, f"a number of {what}")
        if value < least:
            raise argparse.ArgumentTypeError(f"at least {least}, got {value}")
        return value

    return parse


def _number(text: str, what: str) -> float:
    """`text` as a number, or a usage error saying it is not `what`."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def _share(text: str) -> float:
    """A share of requests, 0 to 1."""
    value = _number(text, "a number")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a share is 0 to 1, got {value}")
    return value


def _seconds(text: str) -> float:
    """A duration in seconds, 0 or more."""
    value = _number(text, "a number of seconds")
    if not value >= 0:  # (also NaN)
        raise argparse.ArgumentTypeError(f"0 seconds or more, got {value}")
    return value


def _port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    value = _whole(text, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {value}")
    return value


def _days(text: str) -> int:
    """A number of days of history, at least 1."""
    value = _whole(text, "a number of days")
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1 day, got {value}")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (use YYYY-MM-DD)") from None


def _unknown_stream(name: str) -> str:
    """`reset`'s one line for a stream name it does not know: the likeliest meant one, and
    the streams that have a cursor to reset."""
    from difflib import get_close_matches

    from sitoo_sync.streams import STREAMS

    meant = get_close_matches(name.lower(), list(STREAMS), n=1)
    guess = f" (did you mean {meant[0]}?)" if meant else ""
    return f"unknown stream {name!r}{guess}; streams with a cursor: {', '.join(_resettable())}"


def cmd_reset(args: argparse.Namespace) -> int:
    """`reset`: move a stream's cursors back, under the stream's lock. Needs no credentials:
    it reads no API; it refuses a target that does not exist rather than create it."""
    from sitoo_sync.errors import WarehouseError
    from sitoo_sync.reset import reset_stream
    from sitoo_sync.streams import STREAMS
    from sitoo_sync.warehouse import check_local_target
    from sitoo_sync.warehouse.base import SYNC_STATE

    settings = _settings(args)
    _configure_logs(settings, level="WARNING")
    stream = STREAMS.get(args.stream)
    if stream is None:
        raise ConfigError(_unknown_stream(args.stream))
    path = check_local_target(settings.target_url)
    # A missing file is refused (a typo must not start a new warehouse), but for one thing:
    # `--since` before the first tick of a stream whose partitions the settings name is how
    # its backfill is given a start (README), and the first tick would make the file anyway.
    new_file = path is not None and not path.exists()
    if new_file and not _starts_a_first_tick(settings, stream, args.since):
        with _existing_warehouse(settings, hint="nothing to reset (check SITOO_TARGET_URL)"):
            pass
    lock = None
    new_schema = ""
    try:
        with _existing_warehouse(settings, create=new_file) as warehouse:
            if not new_file and SYNC_STATE.name not in warehouse.table_names():
                # A server's empty or mistyped schema: as a missing file, refused rather
                # than made, but for the same one thing.
                where = f"schema {settings.target_schema} of " if settings.target_schema else ""
                new_schema = f"{where}{masked_url(settings.target_url)}"
                if not _starts_a_first_tick(settings, stream, args.since):
                    raise WarehouseError(
                        f"nothing to reset: no sitoo-sync tables in {new_schema} (check "
                        "SITOO_TARGET_URL and SITOO_TARGET_SCHEMA)"
                    )
            lock = warehouse.lock(stream.name)  # exclusive: no tick loads it meanwhile
            if lock is None:  # an error line like any other (stderr, JSON in a JSON log)
                raise SitooSyncError(
                    f"{stream.name}: a tick is loading it right now; run reset again when it "
                    "is done"
                )
            reset = reset_stream(
                settings, warehouse, stream, partition=args.partition, since=args.since
            )
    finally:
        if lock is not None:  # after the warehouse is closed: a tick let in finds it free
            lock.release()
    if not reset:
        print(f"{stream.name}: nothing to reset, it has loaded nothing into this target yet")
        return EXIT_OK
    start = f"from {args.since.isoformat()} (UTC)" if args.since else "from the start"
    print(
        f"{stream.name}: {len(reset)} partition{'s' if len(reset) != 1 else ''} reset; "
        f"the next tick reads again {start}"
        + (f" (a new warehouse at {path}, made to hold this start)" if new_file else "")
        + (
            f" (new sitoo-sync tables in {new_schema}, made to hold this start)"
            if new_schema
            else ""
        )
    )
    return EXIT_OK


def _starts_a_first_tick(settings: Settings, stream: Stream, since: date | None) -> bool:
    """Whether `reset --since` can set where `stream`'s first tick starts before any
    warehouse exists: it has a cursor, and its partitions (the account, the sites) follow
    from the settings rather than from a listing only a tick reads."""
    if since is None or stream.full_refresh:
        return False
    return bool(stream.partitions.values_from_settings(settings))


def cmd_simulator(args: argparse.Namespace) -> int:
    """`simulator`: serve the fake API until interrupted."""
    from sitoo_sync.simulator import FaultPlan, SimConfig, Simulator

    config = SimConfig(
        seed=args.seed,
        days=args.days,
        registers_per_store=args.registers_per_store,
        malformed_every=args.malformed_every,
        max_reports=args.reports,
        lazy_journal_size=args.lazy_journal_size,
    )
    faults = FaultPlan(error_rate=args.error_rate, latency=args.latency)
    sim = Simulator.create(config, faults=faults, host=args.host, port=args.port)
    try:
        sim.start()
    except OSError as exc:
        raise ConfigError(
            f"--port: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
            "another process may use it: choose another --port, or 0 for any free one"
        ) from None
    print(f"Sitoo simulator listening on {sim.base_url}", flush=True)
    print(f"  {len(sim.world.all_reports())} POS z-reports, {len(sim.world.registers)} registers")
    print("  point sitoo-sync at it with:")
    for name, value in sim.settings_env().items():
        print(f"    export {name}='{value}'")
    print("  press Ctrl-C to stop", flush=True)
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """`demo`: simulator → DuckDB file → a short report."""
    from sitoo_sync.demo import fresh_demo_file, run_demo

    settings = _settings(args)
    # The demo's data is faulty on purpose (malformed records, unknown entry types, with
    # --chaos failing requests): its summary counts those, so their warnings would be noise.
    configure_logging(fmt="console", level="ERROR", secrets=settings.secrets())
    fresh_demo_file(args.db, seed=args.seed, days=args.days)  # a previous demo's is replaced
    return run_demo(settings, db=args.db, days=args.days, seed=args.seed, chaos=args.chaos)


def cmd_bench(args: argparse.Namespace) -> int:  # noqa: PLR0911  # one return per benchmark
    """`bench`: floor vs. full backfill timing."""
    from sitoo_sync import bench

    configure_logging(fmt="console", level="WARNING")
    if args.phase:
        return bench.run_phase(args.phase)
    bench.check_targets(args.target)
    if args.chain:
        return bench.run_chain_benchmark(targets=args.target, rounds=args.rounds)
    if args.verify:
        from sitoo_sync.verify.bench import run_verify_benchmark

        return run_verify_benchmark()
    if args.replicas:
        return bench.run_replicas_benchmark(
            registers_per_store=40,
            latency=0.1,
            replicas=args.replicas,
            targets=args.target,
            rounds=args.rounds,
            concurrencies=args.concurrencies or bench.REPLICA_CONCURRENCIES,
        )
    if args.journal_latency:
        return bench.run_latency_benchmark(
            registers_per_store=40,
            latency=0.1,
            concurrencies=(4, 16, 32),
            targets=args.target,
            rounds=args.rounds,
        )
    if args.journal_scale:
        return bench.run_scale_benchmark(
            entries=args.journal_scale,
            concurrencies=args.concurrencies or bench.SCALE_CONCURRENCIES,
            registers_per_store=args.registers_per_store,
        )
    if args.journals:
        return bench.run_journal_benchmark(
            registers_per_store=10, latency=0.1, targets=args.target, rounds=args.rounds
        )
    return bench.run_benchmark(reports=args.reports, targets=args.target, rounds=args.rounds)


def cmd_verify(args: argparse.Namespace) -> int:
    """`verify`: the controller's checks over the warehouse; exit 1 with findings."""
    from sitoo_sync.errors import WarehouseError
    from sitoo_sync.verify import Scope, run_verify
    from sitoo_sync.verify.coverage import POS, STORE
    from sitoo_sync.verify.findings import Severity
    from sitoo_sync.verify.report import as_json, print_text, write_metrics
    from sitoo_sync.warehouse.base import SYNC_STATE

    settings = _settings(args)
    _configure_logs(settings, level="WARNING")
    if args.metrics_file and not args.metrics_file.parent.is_dir():  # before the checks run
        raise ConfigError(
            f"--metrics-file: the directory {args.metrics_file.parent} does not exist"
        )
    scope = Scope(since=args.since, store=args.store, silent_days=settings.verify_silent_days)
    with _existing_warehouse(
        settings, hint="nothing to verify (check SITOO_TARGET_URL)"
    ) as warehouse:
        if SYNC_STATE.name not in warehouse.table_names():  # a server's empty or wrong schema
            where = f"schema {settings.target_schema} of " if settings.target_schema else ""
            raise WarehouseError(
                f"nothing to verify: no sitoo-sync tables in {where}"
                f"{masked_url(settings.target_url)} (check SITOO_TARGET_URL and "
                "SITOO_TARGET_SCHEMA)"
            )
        run = run_verify(warehouse, scope)
    if run.coverage.empty and not (scope.since or scope.store):  # passing would keep alerts green
        where = f"schema {settings.target_schema} of " if settings.target_schema else ""
        raise WarehouseError(
            f"nothing to verify: no POS or store z-reports in {where}"
            f"{masked_url(settings.target_url)} yet (sync them first: `sitoo-sync run --once`, "
            f"with {POS} and {STORE} in {env_name('streams')} if it is set)"
        )
    if args.json:
        print(as_json(run))
    else:
        for line in print_text(run, limit=100):
            print(line)
    if args.metrics_file:  # after the findings are shown: a file that fails loses none
        try:
            write_metrics(run, args.metrics_file)
        except OSError as exc:
            raise ConfigError(
                f"--metrics-file: cannot write {args.metrics_file}: {exc.strerror or exc}"
            ) from None
    return EXIT_FAILED if run.fails(Severity[args.fail_on.upper()]) else EXIT_OK


def cmd_docs(args: argparse.Namespace) -> int:
    """`docs`: the data dictionary as markdown or a dbt sources.yml."""
    from sitoo_sync.dictionary import render

    text = render(args.format)
    if args.output is None:
        print(text, end="")  # (print drops it when there is no stdout at all)
        return EXIT_OK
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--output: cannot write {args.output}: {exc.strerror}") from None
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "status": cmd_status,
    "reset": cmd_reset,
    "simulator": cmd_simulator,
    "demo": cmd_demo,
    "bench": cmd_bench,
    "verify": cmd_verify,
    "docs": cmd_docs,
}


class _ReaderMayLeave:
    """`sys.stdout` while a command runs: when its reader leaves early (`sitoo-sync status
    --check | head -1`), the rest of the output goes to /dev/null and the command ends
    with its own exit code (a failed check still exits 1), where Python's stdout would
    raise BrokenPipeError in the middle of it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        try:
            written: int = self._inner.write(text)
        except BrokenPipeError:
            self._reader_left()
            return len(text)
        return written

    def flush(self) -> None:
        try:
            self._inner.flush()
        except BrokenPipeError:
            self._reader_left()

    def _reader_left(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._inner.fileno())
        os.close(devnull)
        self._inner.flush()  # what was buffered drains there

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sitoo-sync` console script."""
    stdout = sys.stdout
    if stdout is None:  # started with stdout closed (`>&-`): print() drops the output
        return _main(argv)
    sys.stdout = _ReaderMayLeave(stdout)
    try:
        return _main(argv)
    finally:
        try:
            sys.stdout.flush()  # while a reader that left is still handled
        finally:
            sys.stdout = stdout


def _main(argv: Sequence[str] | None) -> int:
    allocator.tune()  # before any thread starts
    teardown.freeze_at_exit()
    parser = _parser()
    args = parser.parse_args(argv)  # --help, --version and usage errors exit from here
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    # Until the command configures logging from its settings: the format the environment
    # asks for, so that even a configuration error reaches a JSON log as JSON.
    configure_logging(fmt=requested_log_format())
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; every error it raises on purpose becomes one line and an exit code."""
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        exc = as_named(exc, getattr(args, "loaded_settings", None))
        _say(
            "command_failed",
            f"sitoo-sync: configuration error: {exc}",
            error=True,
            exit_code=EXIT_USAGE,
        )
        return EXIT_USAGE
    except SchemaTooNew as exc:  # this process is the one to change, as for a setting
        _say("command_failed", f"sitoo-sync: {exc}", error=True, exit_code=EXIT_USAGE)
        return EXIT_USAGE
    except SitooSyncError as exc:
        _say("command_failed", f"sitoo-sync: {exc}", error=True, exit_code=EXIT_FAILED)
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say("command_failed", "sitoo-sync: interrupted", error=True, exit_code=130)
        return 130
