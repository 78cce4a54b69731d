"""The opening of a scheduled on-sale (issue 22): N queued parties served in one pass.

For each size in opening_sizes (10,000 and 100,000 queued parties in a full run) an
event of N tickets (maxTicketsPerBooking = party_max) is created over HTTP with
salesOpenAt an hour ahead, so it is queueing, and N users are queued straight in SQL
(seed.seed_queue: the rows a 202 booking writes, queue_entries and the event's
queued_count and queued_tickets, but no queue.joined facts; 100,000 bookings through
the API would take longer than the opening), each a party of 1..party_max tickets (a
CRC32 of the user id): about 3.5 tickets a party, so a quarter of the parties are
booked and the rest wait, a hot on-sale. Then the admin opens early, PATCH {salesOpen:
true}, and what is measured is the PATCH's wall time and its batch's holdMs and waitMs,
from the server's booking.batches log line (found by the X-Request-ID the PATCH sends).

The servers are sites of their own with LOCK_TIMEOUT = opening_lock_timeout (60 s), as
the docs advise for a large opening: a change that waits for the opening's lock longer
than LOCK_TIMEOUT is answered 503.

- table lock (the default): each size; row lock: the largest again.
- During the largest opening, in each mode, requests on connections of their own (so
  that either gunicorn worker may take each): from opening_other_after_s after the PATCH,
  a booking of another event (open, plenty of tickets) every opening_other_every_s until
  the PATCH answers; at opening_reads_after_s a status read of each event; at
  opening_same_after_s, opening_same_event bookings of the opening's event. Reported:
  their latencies, and for the other event's bookings which worker answered them (from
  the log) and whether they were sent before or after the same event's bookings. With
  LOCK TABLES everything waits for the opening, reads included. With row locks reads
  answer at once, and the other event sells on in the other worker until a booking of
  the opening's event reaches it: a worker runs one batch at a time, and once its batch
  waits for the opening's event row, its other changes wait too (the opening's own worker
  answers nothing else until the opening is done).

Checked besides the invariants (checks.py, the pre-queue's included):

- the PATCH answers 200 with salesOpen true, queueing false, queuedCount and
  queuedTickets 0;
- every queued party was served once and whole: the queued users' booking and waiting
  rows are exactly the queued users, each with its party's tickets; no queue row is left;
- the journal: one sale.opened with queuedParties N, queuedTickets, and booked + held +
  waitlisted = N as the rows say; N facts with fromQueue: true;
- the order is not the arrival order: the booked users' mean arrival index (user ids
  were queued in order) is within 5 standard errors of the middle;
- the same event's bookings sent during the opening: every one 201 (not 202: the
  opening had begun), its fact after every fromQueue fact, and if waitlisted, behind
  every queued party that waits;
- the other event's bookings: every one 201 booked.
"""

import json
import math
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa

from . import batches, seed
from .checks import Checked, check
from .load import Request, Response
from .scenarios import BOOK, Context, row
from .server import is_loopback
from .site import start_site
from .stats import latency_ms, summarize

SALT = "opening"


@dataclass
class Sent:
    """One request on a connection of its own, timed by this process's clock."""

    response: Response
    request_id: str
    sent: float  # time.perf_counter()
    answered: float


def _send(base_url: str, method: str, path: str, body: dict | None, headers: dict) -> Sent:
    """A request on a new connection (urllib does not keep connections), so each may reach
    either gunicorn worker; the X-Request-ID we send names its batch in the server's log."""
    if not is_loopback(urlsplit(base_url).hostname):
        raise ValueError(f"the benchmark only talks to loopback, not {base_url}")
    request_id = uuid.uuid4().hex
    data = None if body is None else json.dumps(body).encode()
    headers = {**headers, "X-Request-ID": request_id, "Content-Type": "application/json"}
    request = urllib.request.Request(base_url + path, data=data, headers=headers, method=method)
    sent = time.perf_counter()
    status, raw, error = None, b"", None
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        status, raw = refused.code, refused.read()
    except OSError as failed:
        error = f"{type(failed).__name__}: {failed}"
    answered = time.perf_counter()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode("utf-8", "replace")
    shown = Request(method, path, body)
    return Sent(Response(shown, status, answered - sent, parsed, error), request_id, sent, answered)


class Requests:
    """Requests sent on threads of their own, each on its own connection."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.sent: list[Sent] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def send(self, method: str, path: str, body: dict | None = None) -> None:
        def send() -> None:
            done = _send(self.base_url, method, path, body, {})
            with self._lock:
                self.sent.append(done)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        self._threads.append(thread)

    def book(self, event_id: int, user_id: int) -> None:
        self.send("POST", BOOK, {"userId": user_id, "eventId": event_id})

    def join(self) -> None:
        for thread in self._threads:
            thread.join()


def _rows(ctx: Context, query: str, *expanding: str, **params) -> list:
    statement = sa.text(query).bindparams(*(sa.bindparam(k, expanding=True) for k in expanding))
    with ctx.engine.connect() as conn:
        return list(conn.execute(statement, params))


def _scalar(ctx: Context, query: str, **params):
    return _rows(ctx, query, **params)[0][0]


def _by_request(lines: list[dict]) -> dict[str, dict]:
    """Each request id of the committed batches -> its batch line."""
    found = {}
    for line in lines:
        for request_id in line.get("requestIds") or ():
            found[request_id] = line
    return found


def _wait_summary(sent: list[Sent], patch_answered: float) -> dict:
    """Latencies of requests that overlapped the opening, and when they were answered
    against the PATCH's answer (negative: before it)."""
    if not sent:
        return {"sent": 0}
    return {
        "sent": len(sent),
        "statuses": {
            str(s): sum(1 for x in sent if x.response.status == s)
            for s in sorted({x.response.status for x in sent}, key=str)
        },
        **latency_ms(x.response.latency for x in sent),
        "answered_before_patch": sum(1 for x in sent if x.answered < patch_answered),
        "first_answer_after_patch_ms": round(
            (min(x.answered for x in sent) - patch_answered) * 1000, 1
        ),
    }


def _check_served(ctx: Context, checked: Checked, event_id: int, users: range, parties: int):
    """Every queued party was served once, whole; what the journal says of it."""
    expect = checked.expect
    first, last = users.start, users.stop - 1
    tickets = seed._tickets_sql("t.user_id", parties)
    counts = {}
    for table in ("bookings", "waiting_list_entries", "offers"):
        count, wrong = _rows(
            ctx,
            f"SELECT COUNT(*), COALESCE(SUM(t.tickets != {tickets}), 0) FROM {table} t"
            " WHERE t.event_id = :e AND t.user_id BETWEEN :first AND :last",
            e=event_id,
            first=first,
            last=last,
            salt=SALT,
        )[0]
        counts[table] = count
        expect(int(wrong) == 0, f"{table}: {wrong} queued parties served with other tickets")
    served = sum(counts.values())
    expect(served == len(users), f"{served} queued parties served, not {len(users)}")
    left = _scalar(ctx, "SELECT COUNT(*) FROM queue_entries WHERE event_id = :e", e=event_id)
    expect(left == 0, f"{left} queue rows left after the opening")
    facts = _rows(
        ctx,
        "SELECT data FROM journal_entries WHERE event_id = :e AND type = 'sale.opened'",
        e=event_id,
    )
    expect(len(facts) == 1, f"{len(facts)} sale.opened facts, not 1")
    opened = json.loads(facts[0][0]) if facts else {}
    expect(
        opened.get("queuedParties") == len(users),
        f"sale.opened says {opened.get('queuedParties')} parties, not {len(users)}",
    )
    by_rows = {
        "booked": counts["bookings"],
        "waitlisted": counts["waiting_list_entries"],
        "held": counts["offers"],
    }
    said = {key: opened.get(key) for key in by_rows}
    expect(said == by_rows, f"sale.opened says {said}, the rows {by_rows}")
    from_queue = _scalar(
        ctx,
        "SELECT COUNT(*) FROM journal_entries WHERE event_id = :e"
        " AND JSON_EXTRACT(data, '$.fromQueue') = 'true'",
        e=event_id,
    )
    expect(from_queue == len(users), f"{from_queue} fromQueue facts, not {len(users)}")
    # Random, not arrival order: the booked parties' mean arrival index near the middle.
    booked = counts["bookings"]
    if 0 < booked < len(users):
        mean = _scalar(
            ctx,
            "SELECT AVG(user_id - :first) FROM bookings"
            " WHERE event_id = :e AND user_id BETWEEN :first AND :last",
            e=event_id,
            first=first,
            last=last,
        )
        n = len(users)
        error = math.sqrt((n * n - 1) / 12 / booked * (n - booked) / (n - 1))
        z = (float(mean) - (n - 1) / 2) / error
        expect(abs(z) < 5, f"booked parties' mean arrival index {mean} is {z:.1f} SE off")
    else:
        z = None
    return opened, by_rows, z


def _check_after(ctx, checked: Checked, event_id: int, same: list[Sent], waitlisted: int):
    """The same event's bookings sent during the opening came after every queued party."""
    expect = checked.expect
    not_after = [s.response.body for s in same if s.response.status != 201]
    expect(not not_after, f"{len(not_after)} same-event bookings not 201: {not_after[:3]}")
    users = [s.response.request.body["userId"] for s in same if s.response.status == 201]
    if not users:
        return
    last_queued, first_after = _rows(
        ctx,
        "SELECT MAX(CASE WHEN JSON_EXTRACT(data, '$.fromQueue') = 'true' THEN id END),"
        " MIN(CASE WHEN user_id IN :users THEN id END)"
        " FROM journal_entries WHERE event_id = :e",
        "users",
        e=event_id,
        users=users,
    )[0]
    expect(
        first_after is not None and last_queued is not None and first_after > last_queued,
        f"a booking sent during the opening was journalled (entry {first_after}) before the"
        f" last queued party (entry {last_queued})",
    )
    early = [
        s.response.body
        for s in same
        if isinstance(s.response.body, dict)
        and s.response.body.get("status") == "waitlisted"
        and s.response.body["position"] <= waitlisted
    ]
    expect(not early, f"bookings sent during the opening placed among the queue's: {early[:3]}")


def _open(ctx: Context, n: int, lock_mode: str, alongside: bool) -> dict[str, dict]:
    """Queue n parties, open the sale with PATCH, check; the rows of this opening."""
    s = ctx.scale
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")
    name = f"opening, {n:,} queued" + (", row lock" if lock_mode == "row" else "")
    event_id = ctx.api.initialize(
        f"bench {name}", n, maxTicketsPerBooking=s.party_max, salesOpenAt=at
    )
    users = ctx.new_users(n)
    queued = range(users[0], users[-1] + 1)
    started = time.perf_counter()
    tickets = seed.seed_queue(ctx.engine, event_id, queued, s.party_max, SALT)
    seeded_s = time.perf_counter() - started
    status = ctx.api.status(event_id)
    before = (status["queueing"], status["salesOpen"], status["queuedCount"])
    if before != (True, False, n):
        raise RuntimeError(f"event {event_id} before the opening: {status}")
    other_id = ctx.api.initialize(f"bench {name}: another event", 10 * n) if alongside else None
    ctx.say(
        f"{name}: {n:,} parties ({tickets:,} tickets) queued in {seeded_s:.1f} s on event"
        f" {event_id} ({n:,} tickets); PATCH salesOpen true"
        + (
            f"; meanwhile one booking of event {other_id} every {s.opening_other_every_s} s,"
            f" a read of each, and {s.opening_same_event} bookings of the same event"
            if alongside
            else ""
        )
    )
    marked = batches.marks(ctx.log_files)
    cpu_before = ctx.meter.sample()
    opened: list[Sent] = []
    patching = threading.Thread(
        target=lambda: opened.append(
            _send(
                ctx.base_url,
                "PATCH",
                f"/api/events/{event_id}",
                {"salesOpen": True},
                ctx.api.admin_headers,
            )
        )
    )
    same, other, reads = (Requests(ctx.base_url) for _ in range(3))
    patching.start()
    same_at, read = None, False
    if alongside:
        # The other event's bookings from opening_other_after_s on, until the PATCH
        # answers; reads of both events at opening_reads_after_s; the same event's
        # bookings at opening_same_after_s. Each step only while the opening runs.
        began = time.perf_counter()
        other_users = iter(ctx.new_users(s.opening_other_most))
        patching.join(s.opening_other_after_s)
        while patching.is_alive() and (user := next(other_users, None)) is not None:
            since = time.perf_counter() - began
            if not read and since >= s.opening_reads_after_s:
                read = True
                reads.send("GET", f"/api/events/status/{event_id}")
                reads.send("GET", f"/api/events/status/{other_id}")
            if same_at is None and since >= s.opening_same_after_s:
                same_at = time.perf_counter()
                for booker in ctx.new_users(s.opening_same_event):
                    same.book(event_id, booker)
            other.book(other_id, user)
            patching.join(s.opening_other_every_s)
    patching.join()
    for requests in (same, other, reads):
        requests.join()
    cpu = ctx.meter.shares(cpu_before, ctx.meter.sample())
    lines = batches.since(marked)
    patch = opened[0]
    answer = patch.response.body if isinstance(patch.response.body, dict) else {}
    checked = check(ctx.engine, ctx.api, [event_id] + ([other_id] if other_id else []))
    got = tuple(answer.get(k) for k in ("salesOpen", "queueing", "queuedCount", "queuedTickets"))
    checked.expect(
        patch.response.status == 200 and got == (True, False, 0, 0),
        f"the PATCH answered {patch.response.status} {str(patch.response.body)[:300]}",
    )
    fact, outcome, z = _check_served(ctx, checked, event_id, queued, s.party_max)
    _check_after(ctx, checked, event_id, same.sent, outcome["waitlisted"])
    wrong = [x.response.body for x in other.sent if x.response.status != 201]
    checked.expect(not wrong, f"{len(wrong)} of the other event's bookings not 201: {wrong[:3]}")
    by_request = _by_request(lines)
    batch = by_request.get(patch.request_id, {})
    opener = batch.get("process")
    wall = patch.answered - patch.sent
    served_by = {x.request_id: by_request.get(x.request_id, {}).get("process") for x in other.sent}
    during = [x for x in other.sent if x.sent < patch.answered]
    groups = {}  # the other event's bookings sent during the opening, by when and where
    for phase, in_phase in (
        ("before_same", [x for x in during if same_at is None or x.sent < same_at]),
        ("after_same", [x for x in during if same_at is not None and x.sent >= same_at]),
    ):
        for where, test in (
            ("other_processes", lambda p: p not in (None, opener)),
            ("opening_process", lambda p: p == opener),
        ):
            found = [x for x in in_phase if test(served_by[x.request_id])]
            groups[f"{phase}_{where}"] = {
                "count": len(found),
                "answered_during": sum(1 for x in found if x.answered < patch.answered),
                **latency_ms(x.response.latency for x in found),
            }
    details = {
        "lock_mode": lock_mode,
        "queued_parties": n,
        "queued_tickets": tickets,
        "total_tickets": n,
        "seed_s": round(seeded_s, 2),
        "patch_ms": round(wall * 1000, 1),
        "hold_ms": batch.get("holdMs"),
        "wait_ms": batch.get("waitMs"),
        "batch_size": batch.get("batchSize"),
        "parties_per_s": round(n / wall) if wall > 0 else None,
        **outcome,
        "mean_arrival_z": None if z is None else round(z, 2),
        "journal": {k: fact.get(k) for k in ("queuedParties", "queuedTickets", *outcome)},
        "same_event": {
            **_wait_summary(same.sent, patch.answered),
            "sent_after_s": None if same_at is None else round(same_at - patch.sent, 2),
        },
        "other_event": {
            **_wait_summary(other.sent, patch.answered),
            "sent_during": len(during),
            "answered_during": sum(1 for x in during if x.answered < patch.answered),
            **groups,
        },
        "reads": [
            {
                "path": x.response.request.path,
                "status": x.response.status,
                "ms": round(x.response.latency * 1000, 1),
                "sent_after_s": round(x.sent - patch.sent, 2),
                "answered_before_patch": x.answered < patch.answered,
                "queueing": x.response.body.get("queueing")
                if isinstance(x.response.body, dict)
                else None,
            }
            for x in sorted(reads.sent, key=lambda x: x.response.request.path)
        ],
    }
    rows = {
        name: row(
            f"{name}: PATCH salesOpen true",
            summarize([patch.response], wall, {200}),
            cpu,
            checked,
            batches.summarize(lines),
            event_id=event_id,
            opening=details,
        )
    }
    for label, sent in (("the same event", same.sent), ("another event", other.sent)):
        if sent:
            span = max(x.answered for x in sent) - min(x.sent for x in sent)
            rows[f"{name}, {label}"] = row(
                f"{name}: {label} booked meanwhile",
                summarize([x.response for x in sent], span, {201}),
                cpu,  # the opening's stretch
                None,
            )
    return rows


def run(databases, password, workers, tmp, scale, meter, setup, servers, users) -> dict:
    """The openings on two sites of their own (`databases`: table lock, then row lock),
    with LOCK_TIMEOUT raised; their rows. `users`: the run's supply of user ids."""
    s = scale
    env = {"LOCK_TIMEOUT": str(s.opening_lock_timeout)}
    rows: dict[str, dict] = {}
    largest = max(s.opening_sizes)
    for database, lock_mode in zip(databases, ("table", "row"), strict=True):
        site = start_site(
            database, password, workers, tmp, s, meter, setup, servers, lock_mode, env
        )
        site.users = users  # one supply of distinct user ids
        sizes = s.opening_sizes if lock_mode == "table" else (largest,)
        for n in sizes:
            rows.update(_open(site, n, lock_mode, alongside=n == largest))
        site.server.stop()
    return rows
