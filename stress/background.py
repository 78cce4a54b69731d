"""A plain booking storm from a process of its own, alongside a scenario's fault.

The scenarios' own storms (tests/faults.py, httpx) check every answer closely
but send a couple of hundred requests a second at most on a small machine; the
load group commit is for comes from here: aiohttp in another process, on events
of its own, `concurrency` users at a time. Each user books, then perhaps
cancels (promoting the head of the line, or leaving it) and books again, one
request after the other, as a person would.

Like a well-behaved client it waits Retry-After after a 503 and sends the same
request again (at most `attempts` times). After no answer at all it gives that
user up (the request may still be running, so what the user holds is no longer
known) and pauses a little: a server that is gone refuses at once, and a loop
of instant failures would only inflate the count.

Bounded: at most `users` users, and it stops when the scenario's storm is done
(the `alongside` context ends) or after `seconds`. Afterwards `merge` adds its
answers to the scenario's report and checks every acknowledged answer against
the database (see `_expected`).
"""

import asyncio
import itertools
import json
import multiprocessing
import queue
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from bench.server import is_loopback
from tests.conftest import basic_auth
from tests.fault_scenarios import Report, initialize, users_for
from tests.faults import proper_503
from tests.invariants import EventTruth, read_truth

BOOK, CANCEL = "book", "cancel"
GONE_PAUSE = 0.25  # seconds a worker waits after a request got no answer
RETRY_AFTER_CAP = 5.0  # never wait longer than this, whatever Retry-After says

# What a user holds, as the acknowledged answers tell it. LISTED: told
# "waitlisted"; a cancel may have promoted them since, so booked or waiting.
ABSENT, BOOKED, LISTED = "absent", "booked", "listed"

# (request, what its answer said) -> (the states it may follow, the state after).
# An answer from any other state means the service forgot an earlier answer.
SAID = {
    (BOOK, "booked"): ({ABSENT}, BOOKED),
    (BOOK, "waitlisted"): ({ABSENT}, LISTED),
    (BOOK, "already-booked"): ({BOOKED, LISTED}, BOOKED),
    (BOOK, "already-waiting"): ({LISTED}, LISTED),
    (CANCEL, "cancelled"): ({BOOKED, LISTED}, ABSENT),
    (CANCEL, "left_waiting_list"): ({LISTED}, ABSENT),
    (CANCEL, "nothing-to-cancel"): ({ABSENT}, ABSENT),
}


@dataclass(frozen=True)
class Plan:
    users: int = 40_000  # at most; the scenario's storm usually ends it first
    events: int = 8
    tickets: int = 600  # per event: some users get a ticket, the rest wait
    concurrency: int = 32  # users at a time (one connection each)
    cancel_share: float = 0.5  # of users cancel after booking ...
    rebook_share: float = 0.3  # ... and of those, book again
    attempts: int = 3  # sends of one request while the answer is 503
    seconds: float = 180.0
    seed: int = 70


# (user number, request, status or None, what the answer said, a proper 503)
Record = tuple[int, str, int | None, str | None, bool]


# ---------------------------------------------------------------------------
# The client, in its own process


def _said(status: int, body) -> str | None:
    """The answer's "status" (booked, cancelled, ...), or a problem's type slug."""
    if not isinstance(body, dict):
        return None
    if 200 <= status < 300:
        return body.get("status")
    return str(body.get("type", "")).rsplit(":", 1)[-1]


async def _send(session, op: str, event_id: int, user_id: int) -> tuple[Record, float | None]:
    """One request: its record (user number left 0) and, for a 503, how long to wait."""
    try:
        async with session.post(
            f"/api/events/{op}", json={"userId": user_id, "eventId": event_id}
        ) as response:
            raw = await response.read()
            status = response.status
            headers = {k.lower(): v for k, v in response.headers.items()}
    except (TimeoutError, aiohttp.ClientError):
        return (0, op, None, None, False), None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    wait = None
    if status == 503:
        retry_after = headers.get("retry-after", "")
        wait = min(float(retry_after), RETRY_AFTER_CAP) if retry_after.isdigit() else 1.0
    return (0, op, status, _said(status, body), proper_503(status, headers, body)), wait


async def _user(session, number: int, work: tuple, attempts: int, records: list) -> None:
    """One user's requests in order; a 503 is retried, no answer ends the user."""
    event_id, user_id, ops = work
    for op in ops:
        for _ in range(attempts):
            record, wait = await _send(session, op, event_id, user_id)
            records.append((number, *record[1:]))
            if record[2] is None:
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
        self.work: list[tuple[int, int, tuple[str, ...]]] = []  # (event, user, requests)
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
            self.records += [(first + r[0], *r[1:]) for r in _collect(process, out)]
            self.work += work
            self.wall += time.monotonic() - started
            process.join(10)

    def _make_work(self, base_url: str, first: int) -> list[tuple[int, int, tuple[str, ...]]]:
        """Its own events, and each user's requests: book, maybe cancel, maybe book again."""
        plan = self.plan
        events = [
            initialize(base_url, self.admin, f"Background {first}.{n}", plan.tickets)
            for n in range(plan.events)
        ]
        rng = random.Random(plan.seed)
        work = []
        for number, user in enumerate(users_for(plan.seed, plan.users)):
            ops = [BOOK]
            if rng.random() < plan.cancel_share:
                ops.append(CANCEL)
                if rng.random() < plan.rebook_share:
                    ops.append(BOOK)
            work.append((events[number % len(events)], user, tuple(ops)))
        return work

    def merge(self, report: Report, database_url: str) -> None:
        """Add the storm's answers to `report` and check them against the database."""
        statuses = Counter("transport" if r[2] is None else r[2] for r in self.records)
        report.requests += len(self.records)
        for status, count in statuses.items():
            if isinstance(status, int) and 200 <= status < 300:
                report.acknowledged += count
            else:
                report.errors[status] += count
        report.violations += _improper(self.records)
        truth = read_truth(database_url)[0]
        checked, lost = _check(self.work, self.records, truth)
        report.violations += lost
        users = len({r[0] for r in self.records})
        report.figures["background"] = (
            f"{len(self.records)} requests from {users} users on {self.plan.events} events"
            f" ({self.plan.concurrency} at a time, aiohttp, own process) over {self.wall:.1f} s:"
            f" {dict(sorted(statuses.items(), key=str))}; {_applied_anyway(self.records)}"
            f" answered 503 but applied (the retry found it done);"
            f" {checked} users' acknowledged answers checked against the database"
        )
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
        users[record[0]].append(record)
    return users


def _applied_anyway(records: list[Record]) -> int:
    """Requests answered 503 whose retry (that user's next request) found them done:
    the commit went through but its acknowledgement was lost with the connection."""
    done = {"already-booked", "already-waiting", "nothing-to-cancel"}
    return sum(
        1
        for answers in _by_user(records).values()
        for before, after in itertools.pairwise(answers)
        if before[2] == 503 and after[1] == before[1] and after[3] in done
    )


def _improper(records: list[Record]) -> list[str]:
    """Answers no request of this storm may get: anything but 2xx, 404 (nothing to cancel),
    409, a proper 503 (problem+json, Retry-After), or no answer."""
    bad = Counter(
        (r[1], r[2], r[3])
        for r in records
        if r[2] is not None
        and not (200 <= r[2] < 300 or r[2] in (404, 409) or (r[2] == 503 and r[4]))
    )
    return [f"background: unexpected answers {dict(bad)}"] if bad else []


def _check(work: list, records: list[Record], truth: dict[int, EventTruth]) -> tuple[int, list]:
    """Every user whose acknowledged answers say what it holds holds exactly that."""
    booked = {event: set(t.booked) for event, t in truth.items()}
    waiting = {event: set(t.waiting) for event, t in truth.items()}
    found, checked = [], 0
    for number, answers in _by_user(records).items():
        event_id, user, _ = work[number]
        state, problems = _expected(answers)
        found += [f"background user {user}, event {event_id}: {p}" for p in problems]
        if state is None:
            continue
        checked += 1
        holds = (
            BOOKED if user in booked[event_id] else LISTED if user in waiting[event_id] else ABSENT
        )
        if holds != state and not (state == LISTED and holds == BOOKED):
            found.append(f"background user {user}, event {event_id}: told {state}, holds {holds}")
    return checked, found


def _expected(answers: list[Record]) -> tuple[str | None, list[str]]:
    """What the user holds after these answers (None: unknown), and answers that
    contradict the ones before them. It starts with nothing: its events are new.
    A 503 or no answer leaves it unknown (a commit whose acknowledgement was lost
    answers 503 too) until the next acknowledged answer says again."""
    state: str | None = ABSENT
    problems = []
    for _, op, status, said, _ in answers:
        if status is None or status == 503:
            state = None
            continue
        rule = SAID.get((op, said))
        if rule is None:
            problems.append(f"{op} answered {status} {said}")
            state = None
            continue
        before, after = rule
        if state is not None and state not in before:
            problems.append(f"{op} answered {said} after the user was told {state}")
        state = after
    return state, problems
