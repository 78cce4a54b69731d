"""A plain booking storm from a process of its own, alongside a scenario's fault.

The scenarios' own storms (tests/faults.py, httpx) check every answer closely
but send a couple of hundred requests a second at most on a small machine; the
load group commit is for comes from here: aiohttp in another process, on events
of its own, `concurrency` users at a time. Each user books a party of 1..6
tickets (seeded), then perhaps cancels part of it (`tickets`: 1..k-1) or all of
it (serving the waiting parties the freed tickets fit, or leaving the line, or
shrinking its place in it), perhaps the rest, and books again, one request after
the other, as a person would. The events' `maxOvertakes` differ (0: strict line
order, 1, the default 3, 10), so parties are passed over, and block, at
different bounds.

Like a well-behaved client it waits Retry-After after a 503 and sends the same
request again (at most `attempts` times). After no answer at all it gives that
user up (the request may still be running, so what the user holds is no longer
known) and pauses a little: a server that is gone refuses at once, and a loop
of instant failures would only inflate the count.

Bounded: at most `users` users, and it stops when the scenario's storm is done
(the `alongside` context ends) or after `seconds`. Afterwards `merge` adds its
answers to the scenario's report and checks every acknowledged answer against
the database, tickets counted (tests/fault_scenarios.py's Told: a party booked
with k holds k booked tickets unless a later answer gave some back, a party
waitlisted with k waits with k or was served whole, a cancel's remainingTickets
is what is left).
"""

import asyncio
import json
import multiprocessing
import queue
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

import aiohttp

from bench.server import is_loopback
from tests.conftest import basic_auth
from tests.fault_scenarios import (
    BOOK,
    CANCEL,
    Holdings,
    Report,
    Step,
    Told,
    answer_said,
    initialize,
    users_for,
)
from tests.faults import proper_503
from tests.invariants import EventTruth, read_truth

GONE_PAUSE = 0.25  # seconds a worker waits after a request got no answer
RETRY_AFTER_CAP = 5.0  # never wait longer than this, whatever Retry-After says


@dataclass(frozen=True)
class Plan:
    users: int = 40_000  # at most; the scenario's storm usually ends it first
    events: int = 8
    tickets: int = 600  # per event: some parties get in, the rest wait
    concurrency: int = 32  # users at a time (one connection each)
    parties: int = 6  # a party of 1..parties tickets (1: `tickets` never sent)
    cancel_share: float = 0.5  # of users cancel after booking ...
    partial_share: float = 0.5  # ... of those with a party above 1, part of it ...
    rest_share: float = 0.5  # ... and of those, then the rest
    rebook_share: float = 0.3  # of users who gave everything back, book again
    overtakes: tuple[int, ...] = (3, 0, 1, 10)  # the events' maxOvertakes, in turn
    attempts: int = 3  # sends of one request while the answer is 503
    seconds: float = 180.0
    seed: int = 70


# One request of a user's: BOOK or CANCEL, and the `tickets` it sends (None: left out).
Op = tuple[str, int | None]


class Record(NamedTuple):
    """One request sent and what its answer said."""

    number: int  # the user's number in the storm's work
    op: str
    asked: int | None  # the request's tickets
    status: int | None  # None: no answer
    said: str | None  # the answer's status, or a problem's type slug
    proper: bool  # a 503 as promised (problem+json, Retry-After)
    tickets: int | None  # the answer's tickets
    remaining: int | None  # a cancel answer's remainingTickets

    def step(self) -> Step:
        return Step(self.op, self.asked, self.status, self.said, self.tickets, self.remaining)


# ---------------------------------------------------------------------------
# The client, in its own process


async def _send(
    session, op: str, asked: int | None, event_id: int, user_id: int
) -> tuple[Record, float | None]:
    """One request: its record (user number left 0) and, for a 503, how long to wait."""
    payload = {"userId": user_id, "eventId": event_id}
    if asked is not None:
        payload["tickets"] = asked
    try:
        async with session.post(f"/api/events/{op}", json=payload) as response:
            raw = await response.read()
            status = response.status
            headers = {k.lower(): v for k, v in response.headers.items()}
    except (TimeoutError, aiohttp.ClientError):
        return Record(0, op, asked, None, None, False, None, None), None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    wait = None
    if status == 503:
        retry_after = headers.get("retry-after", "")
        wait = min(float(retry_after), RETRY_AFTER_CAP) if retry_after.isdigit() else 1.0
    said = answer_said(status, body)
    body = body if isinstance(body, dict) else {}
    record = Record(
        0,
        op,
        asked,
        status,
        said,
        proper_503(status, headers, body),
        body.get("tickets"),
        body.get("remainingTickets"),
    )
    return record, wait


async def _user(session, number: int, work: tuple, attempts: int, records: list) -> None:
    """One user's requests in order; a 503 is retried, no answer ends the user."""
    event_id, user_id, ops = work
    for op, asked in ops:
        for _ in range(attempts):
            record, wait = await _send(session, op, asked, event_id, user_id)
            records.append(record._replace(number=number))
            if record.status is None:
                await asyncio.sleep(GONE_PAUSE)
                return
            if wait is None:
                break
            await asyncio.sleep(wait)
        else:
            return  # still unavailable: this user gives up


async def _drive(base_url: str, work: list, plan: Plan, ready, stop) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + plan.seconds
    users = iter(enumerate(work))
    connector = aiohttp.TCPConnector(limit=plan.concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for number, one in users:
                if stop.is_set() or time.monotonic() > deadline:
                    return
                await _user(session, number, one, plan.attempts, records)

        ready.set()
        await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    return records


def _child(base_url: str, work: list, plan: Plan, ready, stop, out) -> None:
    out.put(asyncio.run(_drive(base_url, work, plan, ready, stop)))


# ---------------------------------------------------------------------------
# The caller's side


class Background:
    """`alongside` for a scenario: `with background(url):` runs the storm meanwhile.
    Used again (a scenario with several phases), it adds new users on new events."""

    def __init__(self, plan: Plan, admin_password: str):
        self.plan = plan
        self.admin = basic_auth("admin", admin_password)
        self.work: list[tuple[int, int, tuple[Op, ...]]] = []  # (event, user, requests)
        self.records: list[Record] = []
        self.wall = 0.0

    @contextmanager
    def __call__(self, base_url: str) -> Iterator[None]:
        if not is_loopback(urlsplit(base_url).hostname):
            raise ValueError(f"the background storm only targets loopback, not {base_url}")
        work = self._make_work(base_url, first=len(self.work))
        # spawn, not fork: the caller runs threads (the proxy, probes) that a fork
        # would copy mid-flight, locks held.
        context = multiprocessing.get_context("spawn")
        ready, stop, out = context.Event(), context.Event(), context.Queue()
        process = context.Process(
            target=_child, args=(base_url, work, self.plan, ready, stop, out), daemon=True
        )
        started = time.monotonic()
        process.start()
        try:
            # Under way before the scenario's storm starts: the fault hits both.
            if not ready.wait(60):
                raise RuntimeError("the background storm did not start within 60 s")
            yield
        finally:
            stop.set()
            # The child numbers its users from 0; theirs follow the earlier ones here.
            first = len(self.work)
            self.records += [r._replace(number=first + r.number) for r in _collect(process, out)]
            self.work += work
            self.wall += time.monotonic() - started
            process.join(10)

    def _make_work(self, base_url: str, first: int) -> list[tuple[int, int, tuple[Op, ...]]]:
        """Its own events, and each user's requests: book a party, maybe cancel part or all
        of it (and maybe the rest), maybe book again."""
        plan = self.plan
        events = [
            initialize(
                base_url,
                self.admin,
                f"Background {first}.{n}",
                plan.tickets,
                maxOvertakes=plan.overtakes[n % len(plan.overtakes)],
            )
            for n in range(plan.events)
        ]
        rng = random.Random(plan.seed)

        def sent(tickets: int) -> int | None:
            # Before parties nothing is sent; a party of 1 sometimes leaves it out (1).
            if plan.parties == 1 or (tickets == 1 and rng.random() < 0.5):
                return None
            return tickets

        work = []
        for number, user in enumerate(users_for(plan.seed, plan.users)):
            party = rng.randint(1, plan.parties)
            ops: list[Op] = [(BOOK, sent(party))]
            if rng.random() < plan.cancel_share:
                if party > 1 and rng.random() < plan.partial_share:
                    ops.append((CANCEL, rng.randint(1, party - 1)))
                    gone = rng.random() < plan.rest_share
                    if gone:
                        ops.append((CANCEL, None))
                else:  # all of it: `tickets` left out, or sent as the whole party
                    gone = True
                    whole = plan.parties > 1 and rng.random() < 0.3
                    ops.append((CANCEL, party if whole else None))
                if gone and rng.random() < plan.rebook_share:
                    ops.append((BOOK, sent(rng.randint(1, plan.parties))))
            work.append((events[number % len(events)], user, tuple(ops)))
        return work

    def merge(self, report: Report, database_url: str) -> None:
        """Add the storm's answers to `report` and check them against the database."""
        statuses = Counter("transport" if r.status is None else r.status for r in self.records)
        report.requests += len(self.records)
        for status, count in statuses.items():
            if isinstance(status, int) and 200 <= status < 300:
                report.acknowledged += count
            else:
                report.errors[status] += count
        report.violations += _improper(self.records)
        truth = read_truth(database_url)[0]
        checked, known, applied, lost = _check(self.work, self.records, truth)
        report.violations += lost
        users = len({r.number for r in self.records})
        report.figures["background"] = (
            f"{len(self.records)} requests from {users} users on {self.plan.events} events"
            f" ({self.plan.concurrency} at a time, aiohttp, own process) over {self.wall:.1f} s:"
            f" {dict(sorted(statuses.items(), key=str))}; {applied} answered 503 but applied"
            f" (the retry found it done); {checked} users' acknowledged answers checked against"
            f" the database ({known} of them exactly known, the rest up to a request whose"
            " answer was lost)"
        )
        report.figures["background parties"] = _parties(self.records)
        report.data["background_requests"] = len(self.records)


def _collect(process, out) -> list[Record]:
    """The child's records; it puts them on the queue just before it exits."""
    while True:
        try:
            return out.get(timeout=1)
        except queue.Empty:
            if not process.is_alive():
                with suppress(queue.Empty):
                    return out.get(timeout=1)
                raise RuntimeError(
                    f"the background storm's process died (exit code {process.exitcode})"
                ) from None


def _by_user(records: list[Record]) -> dict[int, list[Record]]:
    """Each user's records in the order sent (the users' requests interleave)."""
    users: dict[int, list[Record]] = defaultdict(list)
    for record in records:
        users[record.number].append(record)
    return users


def _improper(records: list[Record]) -> list[str]:
    """Answers no request of this storm may get: anything but 2xx, 404 (nothing to cancel),
    409, a proper 503 (problem+json, Retry-After), or no answer."""
    bad = Counter(
        (r.op, r.status, r.said)
        for r in records
        if r.status is not None
        and not (200 <= r.status < 300 or r.status in (404, 409) or (r.status == 503 and r.proper))
    )
    return [f"background: unexpected answers {dict(bad)}"] if bad else []


def _check(
    work: list, records: list[Record], truth: dict[int, EventTruth]
) -> tuple[int, int, int, list[str]]:
    """Every user's answers agree with one another and with what it holds in the database:
    (users checked, of them exactly known, answers that found a lost one applied, problems)."""
    holdings = {event: Holdings(t) for event, t in truth.items()}
    found: list[str] = []
    checked = known = applied = 0
    for number, answers in _by_user(records).items():
        event_id, user, _ = work[number]
        told = Told.of(r.step() for r in answers)
        where = f"background user {user}, event {event_id}"
        found += [f"{where}: {problem}" for problem in told.problems]
        applied += told.applied_anyway
        if told.lost:
            continue
        checked += 1
        known += told.known
        if not holdings[event_id].agree(told, user):
            holds, tickets = holdings[event_id].of(user)
            found.append(f"{where}: told {told.describe()}, holds {holds} {tickets}")
    return checked, known, applied, found


def _parties(records: list[Record]) -> str:
    """What the acknowledged answers did, in parties and tickets."""
    said = Counter(r.said for r in records if r.status is not None and 200 <= r.status < 300)
    tickets: Counter = Counter()
    partial = 0
    for r in records:
        if r.status is not None and 200 <= r.status < 300 and r.tickets is not None:
            tickets[r.said] += r.tickets
            partial += r.op == CANCEL and bool(r.remaining)
    return (
        f"answers {dict(sorted(said.items(), key=str))}, in tickets"
        f" {dict(sorted(tickets.items(), key=str))}; {partial} cancels gave back part"
        " (remainingTickets > 0)"
    )
