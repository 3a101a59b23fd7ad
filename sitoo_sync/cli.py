"""`sitoo-sync`: the commands. Builds objects from settings and hands them on; no logic here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sitoo_sync import __version__
from sitoo_sync.errors import ConfigError, SitooSyncError
from sitoo_sync.log import configure_logging
from sitoo_sync.settings import Settings, load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Keep a data warehouse in step with Sitoo POS: z-reports, journals and cash registers,
loaded incrementally into DuckDB (default) with exactly-once guarantees.

Configuration comes from SITOO_* environment variables, or a TOML file given with
--config / SITOO_CONFIG (environment wins). See config/sitoo-sync.example.toml.

Exit codes: 0 success, 1 a stream failed (see the log), 2 bad configuration or usage.
"""

EPILOG = """\
examples:
  sitoo-sync demo                      try it: fake Sitoo API -> ./sitoo-demo.duckdb
  sitoo-sync run                       the service: every stream on its schedule
  sitoo-sync run --once                one sync tick of every enabled stream (cron)
  sitoo-sync status                    cursors and health per stream
  sitoo-sync reset pos_z_reports --since 2026-11-01
                                       read again from a day on (rows are kept)
  sitoo-sync simulator --port 8080     the fake Sitoo API alone, to poke with curl
  sitoo-sync bench                     backfill benchmark against the simulator
"""


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="sitoo-sync", description=DESCRIPTION, epilog=EPILOG, formatter_class=fmt
    )
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
        '(SITOO_SCHEDULES, e.g. {"pos_z_reports": "15m"}; defaults: pos_z_reports 15m, '
        "store_z_reports 1h), first at start. SIGTERM/SIGINT stop it gracefully; "
        "SITOO_METRICS_PORT serves /metrics (Prometheus) and /healthz.\n\n"
        "With --once: one tick, then exit (cron, systemd timer, Kubernetes CronJob); exit "
        "code 0 only when every stream succeeded.\n\n"
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
        "--db", type=Path, default=Path("sitoo-demo.duckdb"), help="DuckDB file to write"
    )
    demo.add_argument("--days", type=int, default=30, help="days of POS history to simulate")
    demo.add_argument("--seed", type=int, default=1, help="seed of the simulated data")
    demo.add_argument(
        "--chaos",
        action="store_true",
        help="make the simulator hostile: random 429/5xx/dropped connections",
    )

    status = sub.add_parser(
        "status",
        help="show status, cursor, lag, last success and rows per stream and partition",
        description="Read sync_state from the target: per stream and partition, how the last "
        "tick ended (ok, failed, disabled; or reset by `reset`) and why, the cursor and how "
        "far it is behind now, when it last succeeded, the rows loaded so far and the last "
        "error.",
        formatter_class=fmt,
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")

    reset = sub.add_parser(
        "reset",
        help="move a stream's cursor back so the next tick reads again (no rows are deleted)",
        description="Move the cursor of every partition of STREAM (or of one, --partition) back "
        "to a day (--since), or clear it so the next tick starts as a first one does "
        "(SITOO_JOURNAL_START, SITOO_STORE_Z_REPORTS_START_DAY, or the beginning). Nothing is "
        "deleted: what is read again is upserted on its key and its children replaced as a "
        "set, so a reset only adds what was missing and corrects what changed. Use it to "
        "re-load a period, or to backfill from an earlier day. It waits for no tick: if one "
        "is loading STREAM it says so and exits 1; run it again afterwards.",
        formatter_class=fmt,
    )
    reset.add_argument(
        "stream", metavar="STREAM", help="pos_z_reports, store_z_reports or journal_entries"
    )
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
    simulator.add_argument("--port", type=int, default=8765, help="TCP port (0 = any free port)")
    simulator.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    simulator.add_argument("--days", type=int, default=30, help="days of history")
    simulator.add_argument(
        "--reports", type=int, help="generate this many z-reports (more days as needed)"
    )
    simulator.add_argument("--seed", type=int, default=1, help="seed of the data")
    simulator.add_argument(
        "--registers-per-store", type=int, default=2, help="registers in each store"
    )
    simulator.add_argument(
        "--malformed-every", type=int, default=0, help="corrupt every Nth z-report (0 = none)"
    )
    simulator.add_argument(
        "--error-rate", type=float, default=0.0, help="share of requests that fail (0..1)"
    )
    simulator.add_argument("--latency", type=float, default=0.0, help="seconds added per request")

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
    bench.add_argument("--reports", type=int, default=20000, help="z-reports to backfill")
    bench.add_argument("--rounds", type=int, default=2, help="rounds; the best of each is kept")
    bench.add_argument(
        "--journals",
        action="store_true",
        help="instead: a journal tick over 51 registers at 100 ms latency, concurrency 1 vs 4",
    )
    bench.add_argument(
        "--journal-latency",
        action="store_true",
        help="instead: journal backfill and no-op tick over 201 registers at 100 ms latency, "
        "at concurrency 4, 16 and 32, against the latency limit",
    )
    bench.add_argument("--phase", choices=("floor", "sync"), help=argparse.SUPPRESS)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _configure_logs(settings: Settings, *, level: str | None = None) -> None:
    configure_logging(
        fmt=settings.log_format, level=level or settings.log_level, secrets=settings.secrets()
    )


def cmd_run(args: argparse.Namespace) -> int:
    """`run`: the service; `run --once`: one tick of every enabled stream."""
    from sitoo_sync.streams import select_streams

    settings = _settings(args)
    _configure_logs(settings)
    streams = select_streams(settings.streams)
    settings.require_credentials()  # before the target is opened, locked or created
    if not args.once:
        from sitoo_sync.service import Service

        return Service(settings, streams).run()
    return _run_once(settings, streams)


def _run_once(settings: Settings, streams: list[Any]) -> int:
    from sitoo_sync.api.client import make_client
    from sitoo_sync.locks import try_lock
    from sitoo_sync.sync import run_once
    from sitoo_sync.warehouse import open_warehouse

    warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
    locks = {s.name: try_lock(settings, s.name) for s in streams}
    try:
        runnable = [s for s in streams if locks[s.name] is not None]
        for name in (n for n, lock in locks.items() if lock is None):
            print(f"{name}: skipped, another sitoo-sync holds its lock on this target")
        if not runnable:
            warehouse.close()
            return EXIT_OK
        with make_client(settings) as client:
            report = run_once(settings, warehouse, client, runnable)
    finally:
        for lock in locks.values():
            if lock is not None:
                lock.release()
    for line in report.summary():
        print(line)
    return EXIT_OK if report.ok else EXIT_FAILED


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _lag_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _cursor_text(cursor: str | None) -> str:
    if cursor is None:
        return "-"
    if cursor.isdigit():
        return f"{cursor} ({datetime.fromtimestamp(int(cursor), UTC):%Y-%m-%d %H:%M:%SZ})"
    return cursor


def cmd_status(args: argparse.Namespace) -> int:
    """`status`: sync_state as a table or JSON."""
    from sitoo_sync.streams import STREAMS
    from sitoo_sync.warehouse import open_warehouse

    settings = _settings(args)
    _configure_logs(settings, level="WARNING")
    warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
    try:
        states = warehouse.states()
    finally:
        warehouse.close()
    now = datetime.now(UTC)
    lags = {
        (s.stream, s.partition): STREAMS[s.stream].cursor.lag_seconds(s.cursor, now)
        if s.stream in STREAMS
        else None
        for s in states
    }
    if args.json:
        payload: list[dict[str, Any]] = [
            {
                "stream": s.stream,
                "partition": s.partition,
                "cursor": s.cursor,
                "rows_loaded": s.rows_loaded,
                "windows_loaded": s.windows_loaded,
                "updated_at": s.updated_at.isoformat() if s.updated_at else None,
                "last_success_at": s.last_success_at.isoformat() if s.last_success_at else None,
                "last_error_at": s.last_error_at.isoformat() if s.last_error_at else None,
                "last_error": s.last_error,
                "last_status": s.last_status,
                "last_status_detail": s.last_status_detail,
                "lag_seconds": lags[(s.stream, s.partition)],
            }
            for s in states
        ]
        print(json.dumps(payload, indent=2))
        return EXIT_OK
    if not states:
        print(f"nothing synced yet into {settings.target_url}")
        return EXIT_OK
    header = ("stream", "partition", "status", "cursor", "lag", "last success", "rows", "detail")
    rows = [
        (
            s.stream,
            s.partition,
            s.last_status or "-",
            _cursor_text(s.cursor),
            _lag_text(lags[(s.stream, s.partition)]),
            _when(s.last_success_at),
            str(s.rows_loaded),
            (s.last_status_detail or "-")[:80],
        )
        for s in states
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (use YYYY-MM-DD)") from None


def cmd_reset(args: argparse.Namespace) -> int:
    """`reset`: move a stream's cursors back, under the stream's lock."""
    from sitoo_sync.locks import try_lock
    from sitoo_sync.reset import reset_stream
    from sitoo_sync.streams import STREAMS
    from sitoo_sync.warehouse import open_warehouse

    settings = _settings(args)
    _configure_logs(settings, level="WARNING")
    stream = STREAMS.get(args.stream)
    if stream is None:
        raise ConfigError(f"unknown stream {args.stream!r}; known: {', '.join(STREAMS)}")
    lock = try_lock(settings, stream.name)
    if lock is None:
        print(f"{stream.name}: a tick is loading it right now; run reset again when it is done")
        return EXIT_FAILED
    try:
        warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
        try:
            reset = reset_stream(
                settings, warehouse, stream, partition=args.partition, since=args.since
            )
        finally:
            warehouse.close()
    finally:
        lock.release()
    if not reset:
        print(f"{stream.name}: nothing to reset, it has loaded nothing into this target yet")
        return EXIT_OK
    start = f"from {args.since.isoformat()} (UTC)" if args.since else "from the start"
    print(
        f"{stream.name}: {len(reset)} partition{'s' if len(reset) != 1 else ''} reset; "
        f"the next tick reads again {start}"
    )
    return EXIT_OK


def cmd_simulator(args: argparse.Namespace) -> int:
    """`simulator`: serve the fake API until interrupted."""
    from sitoo_sync.simulator import FaultPlan, SimConfig, Simulator

    config = SimConfig(
        seed=args.seed,
        days=args.days,
        registers_per_store=args.registers_per_store,
        malformed_every=args.malformed_every,
        max_reports=args.reports,
    )
    faults = FaultPlan(error_rate=args.error_rate, latency=args.latency)
    sim = Simulator.create(config, faults=faults, host=args.host, port=args.port).start()
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
    from sitoo_sync.demo import run_demo

    settings = _settings(args)
    # The demo's data is faulty on purpose (malformed records, unknown entry types, with
    # --chaos failing requests): its summary counts those, so their warnings would be noise.
    configure_logging(fmt="console", level="ERROR", secrets=settings.secrets())
    return run_demo(settings, db=args.db, days=args.days, seed=args.seed, chaos=args.chaos)


def cmd_bench(args: argparse.Namespace) -> int:
    """`bench`: floor vs. full backfill timing."""
    from sitoo_sync import bench

    configure_logging(fmt="console", level="WARNING")
    if args.phase:
        return bench.run_phase(args.phase)
    if args.journal_latency:
        return bench.run_latency_benchmark(
            registers_per_store=40,
            latency=0.1,
            concurrencies=(4, 16, 32),
            targets=args.target,
            rounds=args.rounds,
        )
    if args.journals:
        return bench.run_journal_benchmark(
            registers_per_store=10, latency=0.1, targets=args.target, rounds=args.rounds
        )
    return bench.run_benchmark(reports=args.reports, targets=args.target, rounds=args.rounds)


COMMANDS = {
    "run": cmd_run,
    "status": cmd_status,
    "reset": cmd_reset,
    "simulator": cmd_simulator,
    "demo": cmd_demo,
    "bench": cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sitoo-sync` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"sitoo-sync: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SitooSyncError as exc:
        print(f"sitoo-sync: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("sitoo-sync: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sitoo-sync status | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
