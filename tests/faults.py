"""Fault tooling shared by tests/test_faults.py and `python -m stress`.

- `TcpProxy`: a loopback TCP proxy in front of the database that can be cut
  (refuse new connections, reset them, or black-hole them) and restored.
- `tables_locked`, `event_row_locked`: another session holding the booking
  tables, or one event row, the way a stuck job or a long report would.
- `raw_post`: a client that goes away mid-request (short body, no read, reset).
- `paced_storm`: like tests.storm.run_storm, but spreads the requests over time
  (so a fault can hit the middle of it) and keeps each answer's headers and times;
  a client's requests in order (book, then cancel some or all) are one session.
- `ReadyzProbe`: polls /readyz from a few threads, to see when the service knows
  it is cut off and when it is back.
- process and database inspection: a gunicorn's workers, leftover processes,
  tables still locked, transactions still open.
"""

import asyncio
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from booking.sales.locking import LOCK_TABLES

from .storm import Call, Result, Storm

# ---------------------------------------------------------------------------
# The database behind a proxy that can be cut


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `upstream`, on an asyncio loop in its own thread.

    `cut(mode)` takes the database away from everyone who goes through the proxy:

    - "refuse": the listening socket is closed (connects get ECONNREFUSED) and
      every open connection is closed, so the server ends those sessions;
    - "reset": connects are accepted and closed at once, open ones are closed;
    - "blackhole": nothing passes any more, no close either: connects hang and
      open connections stall, like a network partition (clients only find out
      through their own timeouts).

    `restore()` forwards again (stalled connections are closed, as a partition's
    middlebox would forget them).
    """

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 3306)):
        self.upstream = upstream
        self.port = _port_outside_ephemeral_range()
        self.mode: str | None = None  # None: forwarding
        self.accepted = 0
        self.turned_away = 0  # connections reset or held during a cut
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="proxy")
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.Transport] = set()

    # -- control, from any thread

    def start(self) -> "TcpProxy":
        self._thread.start()
        self._run(self._start())
        return self

    def url(self, database_url: str) -> str:
        """`database_url` rerouted through the proxy."""
        url = sa.make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    def cut(self, mode: str = "refuse") -> None:
        if mode not in ("refuse", "reset", "blackhole"):
            raise ValueError(f"unknown cut mode {mode!r}")
        self._run(self._cut(mode))

    def restore(self) -> None:
        self._run(self._restore())

    def close(self) -> None:
        if self._thread.is_alive():
            self._run(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def open_connections(self) -> int:
        return len(self._transports)

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # -- the loop's side

    async def _start(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                self._server = await asyncio.start_server(
                    self._serve, "127.0.0.1", self.port, reuse_address=True, backlog=512
                )
                return
            except OSError:
                # Someone took the port while it was closed; rare, and short-lived.
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _cut(self, mode: str) -> None:
        self.mode = mode
        if mode == "refuse" and self._server is not None:
            self._server.close()
            self._server = None
        if mode == "blackhole":
            # Nothing read from anyone, so nothing forwarded, not even a close.
            for transport in self._transports:
                transport.pause_reading()
        else:
            self._abort_all()

    async def _restore(self) -> None:
        if self.mode == "blackhole":
            self._abort_all()
        self.mode = None
        if self._server is None:
            await self._listen()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._abort_all()

    def _abort_all(self) -> None:
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = writer.transport
        if self.mode is not None:
            self.turned_away += 1
            if self.mode == "blackhole":
                client.pause_reading()
                self._transports.add(client)  # held open, never answered, until restore
            else:
                client.abort()
            return
        self.accepted += 1
        self._transports.add(client)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), timeout=3
            )
        except (OSError, TimeoutError):
            self._transports.discard(client)
            client.abort()
            return
        upstream = up_writer.transport
        if client.is_closing():  # cut while connecting
            upstream.abort()
            return
        self._transports.add(upstream)
        if self.mode == "blackhole":  # black-holed while connecting
            client.pause_reading()
            upstream.pause_reading()
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, upstream, client),
                self._pump(up_reader, writer, client, upstream),
            )
        finally:
            for transport in (client, upstream):
                self._transports.discard(transport)
                transport.abort()

    async def _pump(self, reader, writer, *both: asyncio.Transport) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            # MySQL's protocol has no half-close: one side gone ends the session.
            for transport in both:
                transport.abort()


def _port_outside_ephemeral_range() -> int:
    """A free loopback port below the kernel's ephemeral range.

    The proxy closes and re-binds its port; a port from the ephemeral range could
    meanwhile be handed to someone's outgoing connection.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000..32000")


# ---------------------------------------------------------------------------
# Another session holding the locks


def _engine(database_url: str) -> sa.Engine:
    return sa.create_engine(database_url, poolclass=NullPool)


@contextmanager
def tables_locked(database_url: str) -> Iterator[None]:
    """Another session holds `LOCK TABLES ... WRITE` on every booking table."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(LOCK_TABLES)
            try:
                yield
            finally:
                conn.exec_driver_sql("UNLOCK TABLES")
                conn.rollback()
    finally:
        engine.dispose()


@contextmanager
def event_row_locked(database_url: str, event_id: int) -> Iterator[None]:
    """Another session holds the event's row with SELECT ... FOR UPDATE in an open transaction."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(
                sa.text("SELECT id FROM events WHERE id = :id FOR UPDATE"), {"id": event_id}
            )
            try:
                yield
            finally:
                conn.rollback()
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------
# Clients that go away mid-request

RAW_KINDS = ("truncated", "headers-only", "abandoned", "reset", "stalled")


def _post(port: int, path: str, payload: dict, missing: int) -> tuple[bytes, bytes]:
    """A JSON POST's head and body; the head declares `missing` bytes more than the body has."""
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body) + missing}\r\n\r\n"
    ).encode()
    return head, body


def raw_post(
    port: int, path: str, payload: dict, kind: str, stall: float = 1.0, timeout: float = 10
) -> str | None:
    """POST `payload` to 127.0.0.1:`port` on a raw socket, then go away as `kind` says.

    - truncated: declare 64 more bytes than the body has, send the body, close;
    - headers-only: declare the body, send only the headers, close;
    - abandoned: send the whole request, close without reading the answer;
    - reset: send the whole request, close with a RST (SO_LINGER 0);
    - stalled: declare the body, send half of it, wait `stall` seconds, close.

    Returns None, or a string if the connection itself failed.
    """
    head, body = _post(port, path, payload, missing=64 if kind == "truncated" else 0)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            if kind == "headers-only":
                sock.sendall(head)
            elif kind == "stalled":
                sock.sendall(head + body[: len(body) // 2])
                time.sleep(stall)
            elif kind in ("truncated", "abandoned"):
                sock.sendall(head + body)
            elif kind == "reset":
                sock.sendall(head + body)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                raise ValueError(f"unknown kind {kind!r}")
    except OSError as error:
        return f"{type(error).__name__}: {error}"
    return None


def raw_post_half_close(port: int, path: str, payload: dict, timeout: float = 10) -> bytes:
    """Like `truncated`, but half-close and read what the server answers."""
    head, body = _post(port, path, payload, missing=64)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


# ---------------------------------------------------------------------------
# A storm spread over time, keeping headers and times


@dataclass
class Answer(Result):
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    sent: float = 0.0  # time.monotonic() when the request went out
    answered: float = 0.0  # ... and when its answer (or failure) came back

    @property
    def latency(self) -> float:
        return self.answered - self.sent


async def _paced(
    base_url: str,
    sessions: list[Sequence[Call]],
    concurrency: int,
    rate: float | None,
    timeout: float,
    on_answer: Callable[[Answer, int], None] | None,
) -> tuple[list[Answer], int]:
    gate = asyncio.Semaphore(concurrency)
    in_flight = peak = done = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=httpx.Timeout(timeout)
    ) as client:
        start = time.monotonic()

        async def send(call: Call) -> Answer:
            nonlocal in_flight, peak, done
            async with gate:
                in_flight += 1
                peak = max(peak, in_flight)
                sent = time.monotonic()
                try:
                    response = await client.request(
                        call.method, call.path, json=call.json, headers=call.headers
                    )
                except httpx.TransportError as error:
                    answer = Answer(call, None, error=f"{type(error).__name__}: {error}")
                else:
                    try:
                        body = response.json()
                    except ValueError:
                        body = response.text
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    answer = Answer(call, response.status_code, body, headers=headers)
                finally:
                    in_flight -= 1
                answer.sent, answer.answered = sent, time.monotonic()
            done += 1
            if on_answer is not None:
                on_answer(answer, done)
            return answer

        async def session(index: int, calls: Sequence[Call]) -> list[Answer]:
            if rate:
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            answers = []
            for call in calls:
                answers.append(await send(call))
                if not (answers[-1].status is not None and 200 <= answers[-1].status < 300):
                    break  # the client does not know what it holds: it stops here
            return answers

        done_sessions = await asyncio.gather(
            *(session(i, calls) for i, calls in enumerate(sessions))
        )
    return [answer for answers in done_sessions for answer in answers], peak


def paced_storm(
    base_url: str,
    calls: Sequence[Call | Sequence[Call]],
    concurrency: int = 32,
    rate: float | None = None,
    timeout: float = 30.0,
    on_answer: Callable[[Answer, int], None] | None = None,
) -> Storm:
    """Send `calls`, call i no sooner than i/`rate` s after the start, at most
    `concurrency` in flight; `rate` None sends as fast as run_storm would.

    An item that is a sequence of calls is one client's session: its first call is
    paced as above, each next one goes out once the one before was answered 2xx (after
    anything else the client stops: it no longer knows what it holds).

    Returns a tests.storm.Storm whose results are `Answer`s (with headers and times),
    session by session, each session's in the order sent.
    """
    sessions = [[item] if isinstance(item, Call) else list(item) for item in calls]
    started = time.perf_counter()
    answers, peak = asyncio.run(_paced(base_url, sessions, concurrency, rate, timeout, on_answer))
    return Storm(answers, time.perf_counter() - started, peak, concurrency)


def proper_503(status: int | None, headers: dict[str, str], body) -> bool:
    """A 503 as promised: problem+json of type unavailable, with Retry-After."""
    body = body if isinstance(body, dict) else {}
    return (
        status == 503
        and headers.get("content-type", "").startswith("application/problem+json")
        and body.get("type") == "urn:booking:problem:unavailable"
        and body.get("status") == 503
        and headers.get("retry-after", "").isdigit()
    )


def is_unavailable(answer: Answer) -> bool:
    return proper_503(answer.status, answer.headers, answer.body)


def book_call(event_id: int, user_id: int, tickets: int | None = None) -> Call:
    """A booking of `tickets` (None: the field left out, which means 1)."""
    return _party_call("book", event_id, user_id, tickets)


def cancel_call(event_id: int, user_id: int, tickets: int | None = None) -> Call:
    """A cancel giving back `tickets` (None: the field left out, which means all)."""
    return _party_call("cancel", event_id, user_id, tickets)


def _party_call(op: str, event_id: int, user_id: int, tickets: int | None) -> Call:
    payload = {"userId": user_id, "eventId": event_id}
    if tickets is not None:
        payload["tickets"] = tickets
    return Call("POST", f"/api/events/{op}", payload, tag=user_id)


# ---------------------------------------------------------------------------
# /readyz over time


@dataclass
class Probe:
    started: float
    answered: float
    status: int | None
    proper_503: bool = False


class ReadyzProbe:
    """Polls GET /readyz from `threads` threads, each every `interval` s, while it runs.

    Under a storm a probe waits in gunicorn's queue like any request; several
    threads keep some probe reaching a worker at any moment.
    """

    def __init__(
        self, base_url: str, interval: float = 0.05, timeout: float = 20, threads: int = 4
    ):
        self.base_url = base_url
        self.interval = interval
        self.timeout = timeout
        self.probes: list[Probe] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, daemon=True, name=f"readyz-{n}")
            for n in range(threads)
        ]

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get("/readyz")
                except httpx.TransportError:
                    self.probes.append(Probe(started, time.monotonic(), None))
                else:
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    try:
                        body = response.json()
                    except ValueError:
                        body = response.text
                    status = response.status_code
                    self.probes.append(
                        Probe(started, time.monotonic(), status, proper_503(status, headers, body))
                    )
                self._stop.wait(self.interval)

    def first_ready_after(self, moment: float) -> Probe | None:
        """The earliest-answered 200 among probes sent after `moment`."""
        ready = [p for p in self.probes if p.started >= moment and p.status == 200]
        return min(ready, key=lambda p: p.answered, default=None)

    def answered_within(self, start: float, end: float) -> list[Probe]:
        """Probes answered between `start` and `end`: the service ran their
        `SELECT 1` in that window (it answers right after)."""
        return [p for p in self.probes if start <= p.answered <= end]

    def __enter__(self) -> "ReadyzProbe":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)


def wait_until_ready(base_url: str, timeout: float = 15) -> float:
    """Poll /readyz until 200; return how long it took (raise after `timeout`)."""
    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while time.monotonic() - started < timeout:
            try:
                if client.get("/readyz").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise AssertionError(f"{base_url}/readyz not 200 within {timeout} s")


# ---------------------------------------------------------------------------
# Processes


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (tells a pid from its reuse), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited
        return None
    return int(fields[19])


def _established_inodes(port: int) -> set[str]:
    """Inodes of the accepted, established connections on local `port`.

    `ss` asks the kernel with a filter (milliseconds); /proc/net/tcp lists every
    socket of the machine, thousands in TIME_WAIT after a storm (far slower).
    """
    try:
        listed = subprocess.run(
            ["ss", "-Htne", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
        return set(re.findall(r"\bino:(\d+)", listed)) - {"0"}
    except (OSError, subprocess.SubprocessError):
        pass
    needle = f":{port:04X} "
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            if needle not in line[:60]:
                continue
            fields = line.split()
            # ESTABLISHED, on our port; inode 0 is one still in the accept queue.
            if fields[3] == "01" and fields[9] != "0" and fields[1].endswith(needle[:-1]):
                found.add(fields[9])
    return found


def busy_workers(pids: set[int], port: int) -> set[int]:
    """The processes of `pids` holding an accepted client connection on `port`: the
    workers serving a request right now (sync workers serve one at a time).

    A request lasts milliseconds: a match was serving a moment ago, and may be
    done by the time the caller acts; callers try again.
    """
    serving = {f"socket:[{inode}]" for inode in _established_inodes(port)}
    busy = set()
    for pid in pids:
        try:
            if any(os.readlink(fd) in serving for fd in Path(f"/proc/{pid}/fd").iterdir()):
                busy.add(pid)
        except OSError:
            continue
    return busy


def alive(processes: dict[int, int]) -> dict[int, int]:
    """The ones of `processes` ({pid: start_time}) still running (same pid, same start)."""
    return {pid: t for pid, t in processes.items() if start_time(pid) == t}


def processes_listening_on(port: int) -> dict[int, int]:
    """Running processes ({pid: start_time}) holding the listening socket of 127.0.0.1:`port`:
    a gunicorn's master and every worker it forked, whoever their parent is now."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                listening.add(f"socket:[{fields[9]}]")
    found = {}
    if not listening:
        return found
    for process in Path("/proc").glob("[0-9]*"):
        try:
            holds = any(os.readlink(fd) in listening for fd in (process / "fd").iterdir())
        except OSError:
            continue
        if holds and (started := start_time(int(process.name))) is not None:
            found[int(process.name)] = started
    return found


def kill_leftovers(processes: dict[int, int], grace: float) -> tuple[int, int]:
    """Wait up to `grace` s for `processes` to exit, then SIGKILL, by pid, those still there.

    Returns (exited on their own, killed).
    """
    deadline = time.monotonic() + grace
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = alive(processes)
    for pid in left:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(left) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(processes) - len(left), len(left)


# ---------------------------------------------------------------------------
# What the database still holds


def lingering_locks(database_url: str, older_than: float = 1.0) -> list[str]:
    """Tables of this database still locked, and transactions on it open for over `older_than` s.

    Only sessions using this database are looked at (others share the server),
    and not the session asking.
    """
    name = sa.make_url(database_url).database
    engine = sa.create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    found = []
    try:
        with engine.connect() as conn:
            for row in conn.exec_driver_sql(f"SHOW OPEN TABLES FROM `{name}` WHERE In_use > 0"):
                found.append(f"table {row[1]} in use by {row[2]} session(s)")
            rows = conn.execute(
                sa.text(
                    "SELECT t.trx_mysql_thread_id, t.trx_state, t.trx_started,"
                    " TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1e6 AS age,"
                    " t.trx_tables_locked, t.trx_rows_locked, p.command, p.info"
                    " FROM information_schema.innodb_trx t"
                    " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
                    " WHERE p.db = :db AND p.id <> CONNECTION_ID()"
                ),
                {"db": name},
            )
            for row in rows:
                if row.age is not None and float(row.age) > older_than:
                    found.append(
                        f"transaction of session {row.trx_mysql_thread_id} ({row.trx_state},"
                        f" {row.command}) open {float(row.age):.1f} s, tables locked"
                        f" {row.trx_tables_locked}, rows locked {row.trx_rows_locked}: {row.info}"
                    )
    finally:
        engine.dispose()
    return found
