"""A TCP forwarder a test puts between the sync and a database server, to make it misbehave.

The shared PostgreSQL and MariaDB servers are never stopped or restarted (other sessions
use them): what a test wants of a failing server it gets from this proxy instead. It can
cut every connection now, cut a connection when the client sends a given statement (before
or after forwarding it: mid-COPY, mid-commit), hang (accept, and forward nothing either way),
refuse new connections (its port closed) and be slow. Each connection is two threads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass


@dataclass
class CutOn:
    """Cut the connection whose client sends `pattern`, `times` times at most; with
    `forward`, the chunk reaches the server first (it runs the statement, the client never
    hears how it went)."""

    pattern: bytes
    forward: bool
    times: int = 1


class DbProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; a test changes how through its methods."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._flowing = threading.Event()  # cleared: hang (nothing forwarded)
        self._flowing.set()
        self._stopped = threading.Event()
        self.delay = 0.0  # seconds before each chunk is forwarded
        self.cut_on: list[CutOn] = []
        self.hang_on: bytes | None = None  # hang() once the client sends this (forwarded)
        self.accepted = 0  # connections accepted since start
        self.cuts = 0  # connections cut by cut() or cut_on

    @classmethod
    def for_url(cls, url: str) -> DbProxy:
        """A proxy to the server of a database URL, started."""
        parts = urllib.parse.urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432).start()

    def url(self, url: str) -> str:
        """`url` pointed at this proxy instead of its server."""
        parts = urllib.parse.urlsplit(url)
        user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    # ---- life ---------------------------------------------------------------------------

    def start(self) -> DbProxy:
        self._listen()
        return self

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        """Stop listening and cut every connection."""
        self._stopped.set()
        self._flowing.set()
        self._close_listener()
        self.cut()

    def __enter__(self) -> DbProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- misbehaviours ------------------------------------------------------------------

    def cut(self) -> int:
        """Cut every live connection (both ends see it closed); how many were."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _close(*pair)
        self.cuts += len(pairs)
        return len(pairs)

    def hang(self) -> None:
        """Accept, and forward nothing either way (a stalled network, a wedged middlebox)."""
        self._flowing.clear()

    def refuse(self) -> None:
        """Close the port: new connections are refused (a server that is down)."""
        self._close_listener()

    def restore(self) -> None:
        """Forward again, promptly, and take new connections."""
        self.delay = 0.0
        self.cut_on = []
        self.hang_on = None
        self._flowing.set()
        if self._listener is None:
            self._listen()

    def upstream_ports(self) -> set[int]:
        """The local ports of the connections to the server now (its session list names
        each client by them: MariaDB's `127.0.0.1:<port>`)."""
        with self._lock:
            pairs = list(self._pairs)
        ports: set[int] = set()
        for _client, server in pairs:
            with contextlib.suppress(OSError):
                ports.add(server.getsockname()[1])
        return ports

    def live(self) -> int:
        """Connections forwarded now."""
        with self._lock:
            return len(self._pairs)

    # ---- plumbing -----------------------------------------------------------------------

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed: refuse() or close()
                return
            self.accepted += 1
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            pair = (client, server)
            for src, dst, upstream in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, pair, upstream), daemon=True
                ).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        pair: tuple[socket.socket, socket.socket],
        upstream: bool,
    ) -> None:
        try:
            while True:
                self._flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                while not self._flowing.is_set() and not self._stopped.is_set():
                    self._flowing.wait(0.05)  # a hang that began while this one was reading
                if self.delay:
                    time.sleep(self.delay)
                if upstream and self._cut_here(data, dst):
                    break
                dst.sendall(data)
                if upstream and self.hang_on is not None and self.hang_on in data:
                    self.hang_on = None
                    self.hang()
        except OSError:
            pass
        self._drop(pair)

    def _cut_here(self, data: bytes, dst: socket.socket) -> bool:
        """Whether a cut_on rule cuts the connection at this client chunk (sent first when
        the rule forwards it)."""
        with self._lock:
            rule = next((r for r in self.cut_on if r.times > 0 and r.pattern in data), None)
            if rule is None:
                return False
            rule.times -= 1
        if rule.forward:
            dst.sendall(data)
            time.sleep(0.2)  # the server has it before the connection goes
        self.cuts += 1
        return True

    def _drop(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        _close(*pair)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
