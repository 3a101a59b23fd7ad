"""A fake Sitoo API on loopback that follows ../shared/API_CONTRACT.md.

Routes (one server, both hosts' paths):

    /v2/accounts/{account}/sites/{site}/cashregisters[.json]   start/num, 404 no such site
    /v2/accounts/{account}/pos-z-reports                       bare array, 500 cap
    /v2/accounts/{account}/pos-z-reports/{registerid}/{id}     one report
    /v2/accounts/{account}/store-z-reports[?day=&store_id=]    newest first, 100 cap w/o day
    /v2/accounts/{account}/store-z-reports/config              aggregation config (404 if off)
    /v2/accounts/{account}/store-z-reports/{uuid}              one store report
    /v3/journal-entries                                        {"items": [...], "next": ...}
    /v2/accounts/{account}/sites.json, /orders.json, /sites/{site}/products.json, ...
                                                               REST v2 (see rest_v2/routes.py)

Every route wants HTTP Basic auth with the simulator's API ID and password. Errors answer
with `{"statuscode": int, "errortext": str}`; faults.py's hostile answers (a proxy's HTML
502, a dropped connection, a truncated body) do not.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sitoo_sync.simulator.chain import SITE_IDS
from sitoo_sync.simulator.config import SimConfig
from sitoo_sync.simulator.data import World
from sitoo_sync.simulator.faults import FaultPlan
from sitoo_sync.simulator.journal import journal_page
from sitoo_sync.simulator.params import ApiProblem, csv, integer, one
from sitoo_sync.simulator.rest_v2.query import RestError
from sitoo_sync.simulator.rest_v2.routes import serve as serve_rest_v2
from sitoo_sync.simulator.rest_v2.world import RestWorld

DEFAULT_API_ID = "1500-1"
DEFAULT_PASSWORD = "simulator-secret"  # noqa: S105  # the fake API's own demo password
POS_Z_REPORTS_CAP = 500
STORE_Z_REPORTS_CAP = 100
REGISTERS_MAX_NUM = 100


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (killed mid-request, say) is normal here, not an error."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


@dataclass
class Simulator:
    """The fake API: a `World`, a `FaultPlan`, a server thread, and a request log."""

    world: World = field(default_factory=World)
    faults: FaultPlan = field(default_factory=FaultPlan)
    api_id: str = DEFAULT_API_ID
    password: str = DEFAULT_PASSWORD
    host: str = "127.0.0.1"
    port: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0  # the most requests served at the same time
    log: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _rest: RestWorld | None = None

    @classmethod
    def create(cls, config: SimConfig | None = None, **kwargs: Any) -> Simulator:
        """A simulator over a freshly generated world."""
        return cls(world=World(config), **kwargs)

    @property
    def rest(self) -> RestWorld:
        """The REST v2 world (orders, products, stock ...), generated on first use."""
        with self.world.lock:
            if self._rest is None:
                self._rest = RestWorld(self.world)
            return self._rest

    @property
    def account_id(self) -> str:
        """The account number of the simulated API ID."""
        return self.api_id.split("-", 1)[0]

    @property
    def base_url(self) -> str:
        """Scheme, host and port."""
        return f"http://{self.host}:{self.port}"

    @property
    def v2_url(self) -> str:
        """The REST v2 account base (also the z-reports base)."""
        return f"{self.base_url}/v2/accounts/{self.account_id}"

    @property
    def journals_url(self) -> str:
        """The journals v3 base."""
        return f"{self.base_url}/v3"

    def settings_env(self) -> dict[str, str]:
        """The SITOO_* variables that point sitoo-sync at this simulator."""
        return {
            "SITOO_API_ID": self.api_id,
            "SITOO_API_PASSWORD": self.password,
            "SITOO_API_BASE_URL": f"{self.base_url}/v2/accounts/{{account_id}}",
            "SITOO_JOURNALS_BASE_URL": self.journals_url,
            "SITOO_SITE_IDS": ",".join(str(s) for s in self.world.site_ids()),
        }

    def start(self) -> Simulator:
        """Serve on a free loopback port (or `port`) from a daemon thread."""
        handler = _make_handler(self)
        self._server = _Server((self.host, self.port), handler)
        self.port = int(self._server.server_address[1])
        # Polled every 50 ms, not the default 0.5 s: `stop` waits for a poll, and the tests
        # start and stop a simulator hundreds of times.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sitoo-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Block serving (for `sitoo-sync simulator`)."""
        if self._thread is None:
            self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_to(self, fragment: str) -> int:
        """How many requests had `fragment` in their path."""
        return sum(n for path, n in self.requests.items() if fragment in path)

    # ---- routing ----------------------------------------------------------------------

    def check_auth(self, header: str | None) -> None:
        """401 unless the Basic credentials are the simulator's."""
        if not header or not header.startswith("Basic "):
            raise ApiProblem(401, "Authorization failed")
        try:
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiProblem(401, "Authorization failed") from None
        if user != self.api_id or pw != self.password:
            raise ApiProblem(401, "Authorization failed")

    def route(self, path: str, query: Mapping[str, list[str]]) -> Any:
        """The JSON answer for GET `path`, or an ApiProblem."""
        if path == "/v3/journal-entries":
            return journal_page(self.world.journal, query)
        m = re.fullmatch(r"/v2/accounts/([^/]+)(/.*)", path)
        if not m:
            raise ApiProblem(404, "Resource not found")
        if m.group(1) != self.account_id:
            raise ApiProblem(404, f"Unknown account {m.group(1)}")
        rest = m.group(2)
        if rm := re.fullmatch(r"/sites/(\d+)/cashregisters(?:\.json)?", rest):
            return self._registers(int(rm.group(1)), query)
        if rest.startswith("/store-z-reports"):
            return self._store_z_reports(rest, query)
        if rest in ("/pos-z-reports", "/pos-z-reports.json"):
            return self._pos_z_reports(query)
        if zm := re.fullmatch(r"/pos-z-reports/([^/]+)/(\d+)(?:\.json)?", rest):
            report = self.world.pos_z_report(unquote(zm.group(1)), int(zm.group(2)))
            if report is None:
                raise ApiProblem(404, "POS Z-report not found")
            return report.body
        try:
            answer = serve_rest_v2(self.rest, rest, query)
        except RestError as problem:
            raise ApiProblem(problem.status, problem.text) from None
        if answer is not None:
            return answer
        raise ApiProblem(404, "Resource not found")

    def _store_z_reports(self, rest: str, query: Mapping[str, list[str]]) -> Any:
        if rest == "/store-z-reports/config":
            if self.world.aggregation == "missing":
                raise ApiProblem(404, "Store Z-report aggregation is not configured")
            return self.world.store_config()
        if rest == "/store-z-reports":
            day = one(query, "day")
            limit = None if day else STORE_Z_REPORTS_CAP
            return self.world.store_z_reports(day, csv(query, "store_id"), limit=limit)
        if sm := re.fullmatch(r"/store-z-reports/([0-9a-f-]{36})", rest):
            for store_report in self.world.store_z_reports(None, None, limit=None):
                if store_report["store_zreport_id"] == sm.group(1):
                    return store_report
            raise ApiProblem(404, "Store Z-report not found")
        raise ApiProblem(404, "Resource not found")

    def _registers(self, site: int, query: Mapping[str, list[str]]) -> dict[str, Any]:
        if site not in SITE_IDS:  # the account's sites, as the REST v2 routes answer
            raise ApiProblem(404, "Site not found")
        start = integer(query, "start", 0) or 0
        num = min(integer(query, "num", 10) or 10, REGISTERS_MAX_NUM)
        include_unregistered = (one(query, "includenotregistered") or "").lower() == "true"
        registers = self.world.register_bodies(site, include_unregistered)
        return {"totalcount": len(registers), "items": registers[start : start + num]}

    def _pos_z_reports(self, query: Mapping[str, list[str]]) -> bytes:
        eshops = csv(query, "eshopid")
        try:
            eshop_ids = {int(e) for e in eshops} if eshops is not None else None
        except ValueError:
            raise ApiProblem(400, "Invalid value for eshopid") from None
        reports = self.world.pos_z_reports(
            date_from=integer(query, "dateaddedfrom"),
            date_to=integer(query, "dateaddedto"),
            registerids=csv(query, "registerid"),
            store_ids=csv(query, "store_id"),
            eshopids=eshop_ids,
            limit=POS_Z_REPORTS_CAP,
        )
        return b"[" + b",".join(r.encoded for r in reports) + b"]"


def _make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "SitooSimulator/1"
        # Headers and body go out as two writes on a kept-alive connection: with Nagle's
        # algorithm on, every small answer would wait ~40 ms for the client's delayed ACK.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the request log is kept on the simulator instead."""

        def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
            body = json.dumps({"statuscode": status, "errortext": text}).encode()
            self._send(status, body, headers)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            query = parse_qs(parts.query, keep_blank_values=True)
            with sim.world.lock:
                sim.requests[path] += 1
                sim.log.append((path, {k: v[-1] for k, v in query.items()}))
                sim.in_flight += 1
                sim.max_in_flight = max(sim.max_in_flight, sim.in_flight)
            try:
                self._serve(path, query)
            finally:
                with sim.world.lock:
                    sim.in_flight -= 1

        def _serve(self, path: str, query: dict[str, list[str]]) -> None:
            if sim.faults.latency:
                time.sleep(sim.faults.latency)
            fault = sim.faults.next_fault(path)
            if fault is not None:
                if fault.kind == "drop":
                    self.close_connection = True
                    return
                if fault.kind == "html":
                    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                    self.send_response(502)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                if fault.kind == "slow":
                    sim.faults.hold(fault.seconds)
                elif fault.kind != "truncate":
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = str(int(fault.retry_after))
                    status = int(fault.kind)
                    self._error(status, HTTPStatus(status).phrase, headers)
                    return
            try:
                sim.check_auth(self.headers.get("Authorization"))
                answer = sim.route(path, query)
            except ApiProblem as problem:
                self._error(problem.status, problem.text)
                return
            body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            if fault is not None and fault.kind == "truncate":
                # The whole length promised, half of it sent, the connection closed.
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            self._send(200, body)

    return Handler
