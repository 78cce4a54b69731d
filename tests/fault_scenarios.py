"""The fault scenarios, sized by their arguments: tests/test_faults.py runs them small
and asserts, `python -m stress` runs them large and tabulates.

Each scenario starts its own gunicorn (and proxy), drives real traffic into a
fault, and returns a `Report`: what was sent and answered, every broken promise
(`violations`, `invariant_violations`), how long recovery took, and the figures
that describe the run. A scenario does not assert; the caller decides. The caller
wipes the database first: the invariant checks read every event in it.

Two options are for `python -m stress` (the tests leave them be): `log_level`
INFO makes the servers log each request and each group-commit batch (the stress
run reads the batch lines), and `alongside(base_url)`, a context manager, runs
more load of the caller's on the scenario's server while its storm and fault run.
"""

import contextlib
import itertools
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .conftest import basic_auth
from .faults import (
    RAW_KINDS,
    Answer,
    ReadyzProbe,
    TcpProxy,
    book_call,
    busy_workers,
    cancel_call,
    event_row_locked,
    is_unavailable,
    kill_leftovers,
    lingering_locks,
    paced_storm,
    processes_listening_on,
    raw_post,
    raw_post_half_close,
    start_time,
    tables_locked,
    wait_until_ready,
)
from .invariants import EventTruth, InvariantViolation, check_invariants, read_truth
from .model import EventModel, ModelRefusal, Party
from .servers import Gunicorn, wait_for_workers, worker_pids
from .storm import TRANSPORT_ERROR, Call, Result

# What the storms' requests are answered when they succeed: booked or waitlisted, cancelled.
ACKNOWLEDGED = {201, 200}
# What a retry may be answered besides 2xx: its first try had committed.
RETRIED_BOOK = ("already-booked", "already-waiting")
RETRIED_CANCEL = ((404, "nothing-to-cancel"), (409, "too-many-tickets"))

# More load on the server at this URL while a scenario's storm runs (see the docstring).
Alongside = Callable[[str], contextlib.AbstractContextManager]


@dataclass
class Report:
    scenario: str
    requests: int = 0  # HTTP requests whose answers were read (storms, retries, checks)
    acknowledged: int = 0  # ... answered 2xx
    errors: Counter = field(default_factory=Counter)  # ... the others, by status ("transport")
    violations: list[str] = field(default_factory=list)  # broken promises, invariants aside
    invariant_violations: list[str] = field(default_factory=list)
    recovery: float | None = None  # seconds; what it measures is in `recovery_of`
    recovery_of: str = ""
    figures: dict = field(default_factory=dict)  # what happened, in words, for the output
    data: dict = field(default_factory=dict)  # the same, as values for a test's asserts

    def count(self, results: Iterable[Result]) -> None:
        for result in results:
            self.requests += 1
            if result.status is not None and 200 <= result.status < 300:
                self.acknowledged += 1
            else:
                self.errors["transport" if result.status is None else result.status] += 1

    def violated(self, message: str) -> None:
        self.violations.append(message)

    def check_invariants(self, database_url: str, api_url: str, admin: dict) -> dict:
        try:
            return check_invariants(database_url, api_url, admin, waiting_list_reads=8)
        except InvariantViolation as error:
            self.invariant_violations.extend(str(error).splitlines()[1:])
            return read_truth(database_url)[0]

    def summary(self) -> str:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items(), key=str))
        recovery = (
            f"{self.recovery:.2f}s ({self.recovery_of})" if self.recovery is not None else "-"
        )
        return (
            f"[{self.scenario}] requests={self.requests} 2xx={self.acknowledged}"
            f" errors={{{errors}}} invariant_violations={len(self.invariant_violations)}"
            f" violations={len(self.violations)} recovery={recovery}"
        )

    def details(self) -> str:
        lines = [self.summary()]
        lines += [f"    {key}: {value}" for key, value in self.figures.items()]
        lines += [f"    INVARIANT: {v}" for v in self.invariant_violations]
        lines += [f"    VIOLATION: {v}" for v in self.violations]
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Shared steps


def start_server(
    database_url: str,
    admin_password: str,
    workdir: Path,
    name: str,
    log_level: str = "ERROR",  # 503s log warnings; keep the output readable
    **env,
):
    """gunicorn logging to `workdir`/`name`.log. Below ERROR it logs a line per request
    (and batch) to stderr as well: that output goes to `name`.out, not the caller's."""
    env.setdefault("BOOKING_LOCK", "table")
    workdir = Path(workdir)
    output = None if log_level.upper() == "ERROR" else workdir / f"{name}.out"
    return Gunicorn(
        database_url,
        admin_password,
        output=output,
        LOG_FILE=workdir / f"{name}.log",
        LOG_LEVEL=log_level,
        **env,
    ).start()


def beside(alongside: Alongside | None, base_url: str) -> contextlib.AbstractContextManager:
    """The caller's extra load on `base_url`, if any."""
    return alongside(base_url) if alongside is not None else contextlib.nullcontext()


def logged_errors(report: Report, gunicorn: Gunicorn) -> None:
    """The service logs an ERROR for each 500 and each constraint the rules let through."""
    try:
        lines = Path(gunicorn.env["LOG_FILE"]).read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    errors = [line for line in lines if '"level": "ERROR"' in line]
    if errors:
        report.violated(f"the service logged {len(errors)} ERROR line(s), first: {errors[0][:300]}")


def initialize(base_url: str, admin: dict, name: str, tickets: int, **fields) -> int:
    """A new event of `tickets`; `fields`: more of its settings (maxOvertakes, ...)."""
    response = httpx.post(
        f"{base_url}/api/events/initialize",
        json={"eventName": name, "totalTickets": tickets, **fields},
        headers=admin,
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["eventId"]


def check_answers(report: Report, answers: Iterable[Answer], allowed: set, what: str) -> None:
    """Every answer's kind is in `allowed`; every 5xx is a proper 503 (never a bare 500)."""
    unexpected = Counter()
    bare = Counter()
    for answer in answers:
        if answer.kind not in allowed:
            unexpected[answer.kind] += 1
        if answer.status is not None and answer.status >= 500 and not is_unavailable(answer):
            bare[answer.status] += 1
    if unexpected:
        report.violated(f"{what}: unexpected answers {dict(unexpected)} (allowed {allowed})")
    if bare:
        report.violated(f"{what}: 5xx without problem+json/Retry-After: {dict(bare)}")


def retry(report: Report, base_url: str, calls: list[Call]) -> list[Answer]:
    """Send the same requests again: after a 503 or no answer it must be safe. A booking:
    201, or 409 already-* (its first try had committed). A cancel: 200, or 404 (the first
    gave back all), or 409 too-many-tickets (the first gave back part, and what is left
    is less than asked again). Whether each answer is right is told_violations' part."""
    if not calls:
        return []
    storm = paced_storm(base_url, calls, concurrency=8)
    report.count(storm.results)
    for answer in storm.results:
        said = answer_said(answer.status, answer.body)
        if answer.call.path.endswith("/book"):
            ok = answer.status == 201 or (answer.status == 409 and said in RETRIED_BOOK)
        else:
            ok = answer.status == 200 or (answer.status, said) in RETRIED_CANCEL
        if not ok:
            report.violated(
                f"retry of user {answer.call.tag} ({answer.call.path}): {answer.kind} {answer.body}"
            )
    return storm.results


def acknowledged_violations(answers: Iterable[Answer], truth: EventTruth) -> list[str]:
    """Every 2xx (and 409 already-*) is what the database holds.

    Booked users hold a ticket; waitlisted users wait at the place they were
    given: no scenario cancels during its storm, so nobody is promoted and the
    line only grows, and place p is index p-1. Sorted by the places handed out,
    the users appear in the table's seq order.
    """
    booked = set(truth.booked)
    index = {user: i for i, user in enumerate(truth.waiting)}
    found = []
    places: dict[int, int] = {}
    for answer in answers:
        body = answer.body if isinstance(answer.body, dict) else {}
        user = answer.call.json["userId"]
        said = body.get("status") if answer.status == 201 else body.get("type", "").rsplit(":")[-1]
        if answer.status not in (201, 409) or said not in (
            "booked",
            "waitlisted",
            "already-booked",
            "already-waiting",
        ):
            continue
        if said in ("booked", "already-booked"):
            if user not in booked:
                found.append(f"user {user} was told {said} but holds no ticket")
            continue
        if user not in index:
            where = "holds a ticket instead" if user in booked else "is not in the line"
            found.append(f"user {user} was told {said} at {body.get('position')} but {where}")
            continue
        position = body.get("position")
        if places.setdefault(user, position) != position:
            found.append(f"user {user} was given places {places[user]} and {position}")
        if index[user] != position - 1:
            found.append(f"user {user} was given place {position}, is at {index[user] + 1}")
    by_place = sorted((place, index[user], user) for user, place in places.items())
    for (p1, i1, u1), (p2, i2, u2) in itertools.pairwise(by_place):
        if p1 == p2 or i1 >= i2:
            found.append(f"users {u1} (place {p1}) and {u2} (place {p2}) are out of line order")
    return found


def tables_hold(truth: EventTruth) -> str:
    """What an event's users hold, in parties and tickets."""
    return (
        f"{len(truth.booked)} parties booked ({sum(truth.booked_tickets.values())} tickets),"
        f" {len(truth.waiting)} waiting ({truth.waiting_tickets} tickets),"
        f" {truth.available} of {truth.total} free"
    )


def model_of(truth: EventTruth) -> EventModel:
    """The reference model of the rule (tests/model.py) holding what the database holds."""
    model = EventModel(
        total=truth.total,
        mode=truth.waitlist_mode,
        max_tickets_per_booking=truth.max_tickets_per_booking,
        max_overtakes=truth.max_overtakes,
        sales_open=truth.sales_open,
    )
    model.booked = dict(truth.booked_tickets)
    model.offered = dict(truth.offer_tickets)
    model.line = [Party(user, tickets, overtakes) for user, tickets, overtakes in truth.parties]
    return model


def model_differs(what: str, response: httpx.Response, status: int, change, *args) -> list[str]:
    """The service's answer to a change is the model's (`change(*args)`, applied to it)."""
    try:
        expected = change(*args)
    except ModelRefusal as refusal:
        expected, status = {"type": f"urn:booking:problem:{refusal.problem}"}, refusal.status
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == status and all(body.get(k) == v for k, v in expected.items()):
        return []
    return [f"{what}: {response.status_code} {response.text.strip()}; model: {status} {expected}"]


def spread(values: Iterable[float]) -> str:
    """min / median / max of some seconds."""
    ordered = sorted(values)
    if not ordered:
        return "-"
    low, mid, high = ordered[0], ordered[len(ordered) // 2], ordered[-1]
    return f"{low:.2f} / {mid:.2f} / {high:.2f} s (min / median / max)"


def users_for(seed: int, count: int) -> list[int]:
    return random.Random(seed).sample(range(1, 10_000_000), count)


def party_sessions(
    event_id: int,
    people: list[int],
    seed: int,
    parties: int = 1,
    cancels: float = 0.0,
    partial: float = 0.5,
) -> list[list[Call]]:
    """Each user's requests, in order: a booking of a party of 1..`parties` tickets (seeded;
    with `parties` 1 the request leaves `tickets` out, as before parties), then for a share
    `cancels` of the users a cancel once the booking is answered: of part of the party
    (`tickets` 1..k-1) for a share `partial` of the parties larger than 1, else of all."""
    rng = random.Random(seed)
    sessions = []
    for user in people:
        tickets = rng.randint(1, parties)
        # A party of 1 sometimes leaves `tickets` out (it means 1), sometimes sends it.
        sent = tickets if parties > 1 and (tickets > 1 or rng.random() < 0.5) else None
        session = [book_call(event_id, user, sent)]
        if cancels and rng.random() < cancels:
            part = rng.randint(1, tickets - 1) if tickets > 1 and rng.random() < partial else None
            session.append(cancel_call(event_id, user, part))
        sessions.append(session)
    return sessions


def party_sent(tickets: int, parties: int) -> int | None:
    """The `tickets` a booking of `tickets` sends: none before parties (`parties` 1)."""
    return tickets if parties > 1 else None


# ---------------------------------------------------------------------------
# What the answers told each user, checked against the database
#
# A user's requests are followed in the order sent. What it may hold is a set of
# states: (ABSENT, 0), (BOOKED, n), or (LISTED, n): told "waitlisted" with a party of
# n, so waiting with n, or served whole since by the allocation (booked; offered in
# offer mode). An acknowledged answer (2xx, or a 404/409 refusal: nothing changed)
# keeps the states it could follow and moves them on; none left means it contradicts
# the answers before it. A 503 or no answer leaves both: as before, or as if applied
# (a commit whose acknowledgement was lost answers 503 too), until an answer says.

ABSENT, BOOKED, LISTED = "absent", "booked", "listed"
NOTHING = (ABSENT, 0)
BOOK, CANCEL = "book", "cancel"
State = tuple[str, int]


@dataclass(frozen=True)
class Step:
    """One request of a user's and what its answer said."""

    op: str  # BOOK or CANCEL
    asked: int | None  # the request's tickets; None: left out (a booking of 1, a cancel of all)
    status: int | None  # None: no answer
    said: str | None = None  # the answer's "status", or a problem's type slug
    tickets: int | None = None  # the answer's tickets
    remaining: int | None = None  # a cancel answer's remainingTickets

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and (200 <= self.status < 300 or self.status in (404, 409))

    def describe(self) -> str:
        asked = "" if self.asked is None else f" {self.asked}"
        said = f"{self.status} {self.said}"
        if self.tickets is not None:
            said += f" tickets={self.tickets}"
        if self.remaining is not None:
            said += f" remaining={self.remaining}"
        return f"{self.op}{asked} answered {said}"


def answer_said(status: int | None, body) -> str | None:
    """The answer's "status" (booked, cancelled, ...), or a problem's type slug."""
    if not isinstance(body, dict):
        return None
    if status is not None and 200 <= status < 300:
        return body.get("status")
    return str(body.get("type", "")).rsplit(":", 1)[-1]


def step_of(answer: Result) -> Step:
    call, body = answer.call, answer.body if isinstance(answer.body, dict) else {}
    return Step(
        BOOK if call.path.endswith("/book") else CANCEL,
        call.json.get("tickets"),
        answer.status,
        answer_said(answer.status, body),
        body.get("tickets"),
        body.get("remainingTickets"),
    )


def _after(state: State, step: Step) -> State | None:
    """The state after `step`'s acknowledged answer, or None if it cannot follow `state`."""
    kind, held = state
    said, asked = step.said, step.asked
    if step.op == BOOK:
        party = 1 if asked is None else asked
        if said in ("booked", "waitlisted"):
            if kind != ABSENT or step.tickets != party:
                return None
            return (BOOKED if said == "booked" else LISTED, party)
        if said == "already-booked":  # a LISTED party was served since
            return (BOOKED, held) if kind in (BOOKED, LISTED) else None
        if said == "already-waiting":
            return state if kind == LISTED else None
        return None
    if said == "nothing-to-cancel":
        return state if kind == ABSENT else None
    if kind == ABSENT:
        return None
    given = held if asked is None else asked
    if said == "too-many-tickets":  # more than the user has: nothing changed
        return state if given > held else None
    if given > held or step.tickets != given or step.remaining != held - given:
        return None
    rest = held - given
    if said == "cancelled":  # a booking: BOOKED, or a LISTED party served since
        return (BOOKED, rest) if rest else NOTHING
    if said == "left_waiting_list" and kind == LISTED:  # still waiting (may be served now)
        return (LISTED, rest) if rest else NOTHING
    return None


def _applied(state: State, step: Step) -> set[State]:
    """The states `step` may have left `state` in, its answer lost."""
    kind, held = state
    if step.op == BOOK:
        party = 1 if step.asked is None else step.asked
        return {(BOOKED, party), (LISTED, party)} if kind == ABSENT else {state}
    given = held if step.asked is None else step.asked
    if kind == ABSENT or given > held:
        return {state}
    return {(kind, held - given) if held > given else NOTHING}


@dataclass
class Told:
    """What a user's answers so far tell it holds. `states`: each state it may be in, and
    whether it is there only if a request whose answer was lost committed."""

    states: dict[State, bool] = field(default_factory=lambda: {NOTHING: False})
    problems: list[str] = field(default_factory=list)
    applied_anyway: int = 0  # acknowledged answers that show an unanswered try had committed
    lost: bool = False  # an answer contradicted the ones before: no longer followed

    @classmethod
    def of(cls, steps: Iterable[Step]) -> "Told":
        told = cls()
        for step in steps:
            told.add(step)
        return told

    def add(self, step: Step) -> None:
        if self.lost:
            return
        if not step.acknowledged:
            for state in list(self.states):
                for after in _applied(state, step):
                    self.states.setdefault(after, True)
            return
        moved = {s: (after, unanswered) for s, unanswered in self.states.items()
                 if (after := _after(s, step)) is not None}  # fmt: skip
        if not moved:
            self.problems.append(f"{step.describe()}, but the user was told {self.describe()}")
            self.lost = True
            return
        if all(unanswered for _, unanswered in moved.values()):
            self.applied_anyway += 1
        self.states = dict.fromkeys((after for after, _ in moved.values()), False)

    def describe(self) -> str:
        return " or ".join(f"{kind} {held}" for kind, held in sorted(self.states)) or "-"

    @property
    def known(self) -> bool:
        return not self.lost and len(self.states) == 1


class Holdings:
    """What each user holds for one event, as the database says."""

    def __init__(self, truth: EventTruth):
        self.truth = truth
        self.waiting = {user: tickets for user, tickets, _ in truth.parties}

    def of(self, user: int) -> State:
        if user in self.truth.booked_tickets:
            return (BOOKED, self.truth.booked_tickets[user])
        if user in self.truth.offer_tickets:
            return ("offered", self.truth.offer_tickets[user])
        if user in self.waiting:
            return ("waiting", self.waiting[user])
        return NOTHING

    def agree(self, told: Told, user: int) -> bool:
        """The database holds one of the states the user's answers allow."""
        holds = self.of(user)
        served = {"waiting", BOOKED} | (
            {"offered"} if self.truth.waitlist_mode == "offer" else set()
        )
        return any(
            holds == state or (state[0] == LISTED and holds[0] in served and holds[1] == state[1])
            for state in told.states
        )


def told_violations(answers: Iterable[Result], truth: EventTruth) -> list[str]:
    """Every user's answers (in the order sent, retries after) agree with one another and
    with what the database holds: a party booked (201 booked, k) holds k booked tickets
    unless a later answer gave some back; a party waitlisted with k waits with k or was
    served whole; a cancel answer's tickets and remainingTickets add up."""
    steps: dict[int, list[Step]] = {}
    for answer in answers:
        steps.setdefault(answer.call.json["userId"], []).append(step_of(answer))
    return user_violations(steps, truth)


def user_violations(steps: dict[int, list[Step]], truth: EventTruth) -> list[str]:
    holdings = Holdings(truth)
    found = []
    for user, user_steps in steps.items():
        told = Told.of(user_steps)
        found += [f"user {user}: {problem}" for problem in told.problems]
        if not told.lost and not holdings.agree(told, user):
            held, tickets = holdings.of(user)
            found.append(f"user {user} was told {told.describe()}, holds {held} {tickets}")
    return found


# ---------------------------------------------------------------------------
# 1. The database goes away mid-storm, and comes back


def db_outage(
    database_url: str,
    admin_password: str,
    workdir: Path,
    *,
    users: int = 600,
    tickets: int = 100,
    concurrency: int = 32,
    rate: float = 100,
    cut_at: float = 0.3,
    hold: float = 2.0,
    mode: str = "refuse",
    lock_mode: str = "table",
    workers: int = 4,
    lock_timeout: int = 2,
    settle: float = 0.5,
    recovery_bound: float = 10.0,
    client_timeout: float = 30.0,
    seed: int = 51,
    parties: int = 1,
    cancels: float = 0.0,
    partial: float = 0.5,
    log_level: str = "ERROR",
    alongside: Alongside | None = None,
) -> Report:
    """`users` book `tickets` through a proxy that is cut (`mode`) after `cut_at` of
    the answers, for `hold` s, then restored; then every 503 is retried. Parties of
    1..`parties` tickets; a share `cancels` of the users cancel (part, for a share
    `partial`) once booked or waitlisted (party_sessions)."""
    report = Report(f"db outage ({mode}, {hold:g} s), {lock_mode} lock")
    admin = basic_auth("admin", admin_password)
    people = users_for(seed, users)
    with TcpProxy() as proxy:
        gunicorn = start_server(
            proxy.url(database_url),
            admin_password,
            workdir,
            f"outage-{mode}-{lock_mode}",
            workers=workers,
            LOCK_TIMEOUT=lock_timeout,
            BOOKING_LOCK=lock_mode,
            log_level=log_level,
        )
        try:
            wait_for_workers(gunicorn.process.pid, workers, gone=set())
            event_id = initialize(gunicorn.url, admin, f"Outage {mode}", tickets)
            sessions = party_sessions(event_id, people, seed, parties, cancels, partial)
            times: dict[str, float] = {}

            def fault() -> None:
                times["cut"] = time.monotonic()
                proxy.cut(mode)
                times["cut_done"] = time.monotonic()
                time.sleep(hold)
                times["restore"] = time.monotonic()
                proxy.restore()
                times["restored"] = time.monotonic()

            faulter = threading.Thread(target=fault, name="fault")
            cut_index = max(1, int(users * cut_at))

            def on_answer(_answer: Answer, answered: int) -> None:
                if answered == cut_index:
                    faulter.start()

            with (
                beside(alongside, gunicorn.url),
                ReadyzProbe(gunicorn.url, timeout=client_timeout) as probe,
            ):
                storm = paced_storm(
                    gunicorn.url,
                    sessions,
                    concurrency=concurrency,
                    rate=rate,
                    timeout=client_timeout,
                    on_answer=on_answer,
                )
                faulter.join()
                try:
                    wait_until_ready(gunicorn.url, timeout=recovery_bound)
                except AssertionError as error:
                    report.violated(str(error))
                time.sleep(0.2)
            answers = storm.results
            report.count(answers)
            cut, restore = times["cut_done"], times["restored"]

            # While cut: 503 problem+json with Retry-After, never a 500 or no answer.
            check_answers(report, answers, {*ACKNOWLEDGED, 503}, "storm")
            unavailable = storm.with_status(503)
            if not unavailable:
                report.violated("the cut produced no 503: it did not hit the storm")
            # Answered from 0.2 s after the cut to the restore: pinged while cut.
            during = probe.answered_within(cut + 0.2, times["restore"])
            if not during and mode != "blackhole":
                # Black-holed, /readyz waits on the socket timeouts like everyone
                # else, and may not be answered before the restore.
                report.violated("no /readyz probe fell inside the cut")
            if not all(p.proper_503 for p in during):
                report.violated(f"/readyz during the cut: {Counter(p.status for p in during)}")
            # After: ready again, and bookings succeed, without a restart.
            ready = probe.first_ready_after(restore)
            report.recovery_of = "restore -> /readyz 200"
            if ready is None:
                report.violated("/readyz never answered 200 after the restore")
            else:
                report.recovery = ready.answered - restore
            later = [a for a in answers if a.sent >= restore + settle]
            if later and any(a.status not in ACKNOWLEDGED for a in later):
                report.violated(
                    f"requests sent {settle} s after the restore still failed:"
                    f" {Counter(a.kind for a in later)}"
                )
            sent_after = sum(1 for a in answers if a.sent >= restore)
            first_201 = min(
                (a.answered - restore for a in answers if a.sent >= restore and a.status == 201),
                default=None,
            )

            # Retry every 503 and every unanswered request: safe, never a second booking.
            again = [a.call for a in answers if a.status == 503 or a.status is None]
            retried = retry(report, gunicorn.url, again)
            committed_anyway = sum(1 for a in retried if a.status in (404, 409))

            truth = report.check_invariants(database_url, gunicorn.url, admin)[event_id]
            report.violations += told_violations([*answers, *retried], truth)
            if not cancels:  # the line only grew: each place is where it was given
                report.violations += acknowledged_violations([*answers, *retried], truth)
            if parties == 1 and not cancels:
                if len(truth.booked) != min(tickets, users):
                    report.violated(f"{len(truth.booked)} booked, expected {min(tickets, users)}")
                if len(truth.booked) + len(truth.waiting) != users:
                    report.violated(
                        f"{len(truth.booked)} booked + {len(truth.waiting)} waiting != {users}"
                        " users"
                    )
            if held := lingering_locks(database_url):
                report.violated(f"locks left behind: {held}")
            logged_errors(report, gunicorn)
            report.figures.update(
                storm=storm.summary(),
                fault=(
                    f"{mode} cut after {cut_index} answers, held {restore - cut:.2f} s;"
                    f" connections reset or held by the proxy while cut: {proxy.turned_away}"
                ),
                during_cut=(
                    f"{len(unavailable)} x 503 (all problem+json + Retry-After:"
                    f" {all(is_unavailable(a) for a in unavailable)}), answered after"
                    f" {spread(a.latency for a in unavailable)};"
                    f" /readyz {len(during)} probes: {dict(Counter(p.status for p in during))}"
                ),
                recovery=(
                    f"/readyz 200 {report.recovery if report.recovery is not None else -1:.2f} s"
                    f" after restore; first 201 sent after restore answered"
                    f" {first_201 if first_201 is not None else -1:.2f} s after;"
                    f" {sent_after} requests sent after restore"
                ),
                retries=(
                    f"{len(again)} retried: {dict(Counter(a.kind for a in retried))},"
                    f" of which already applied (503 but committed): {committed_anyway}"
                ),
                database=tables_hold(truth),
            )
        finally:
            gunicorn.stop()
    return report


# ---------------------------------------------------------------------------
# 2. Another session holds the tables, or the event's row


def lock_wait(
    database_url: str,
    admin_password: str,
    workdir: Path,
    *,
    requests: int = 6,
    concurrency: int | None = None,
    hold: float = 5.0,
    kinds: tuple[str, ...] = ("tables", "row"),
    lock_mode: str = "table",
    workers: int = 4,
    lock_timeout: int = 2,
    bound: float = 15.0,
    seed: int = 52,
    parties: int = 1,
    cancels: float = 0.0,
    partial: float = 0.5,
    log_level: str = "ERROR",
    alongside: Alongside | None = None,
) -> list[Report]:
    """While another session holds the lock for `hold` s, `requests` bookings arrive,
    `concurrency` at a time (default: all at once): each answers a proper 503 within
    `bound` s and stores nothing; once released, the same requests succeed. Parties of
    1..`parties` tickets; once released, a share `cancels` of them cancel (part, for a
    share `partial`) after their booking succeeds (party_sessions)."""
    admin = basic_auth("admin", admin_password)
    reports = []
    gunicorn = start_server(
        database_url,
        admin_password,
        workdir,
        f"lockwait-{lock_mode}",
        workers=workers,
        LOCK_TIMEOUT=lock_timeout,
        BOOKING_LOCK=lock_mode,
        log_level=log_level,
    )
    try:
        wait_for_workers(gunicorn.process.pid, workers, gone=set())
        event_id = initialize(gunicorn.url, admin, "Lock wait", 1_000_000)
        for number, kind in enumerate(kinds):
            label = "LOCK TABLES ... WRITE" if kind == "tables" else "SELECT ... FOR UPDATE"
            report = Report(f"lock held ({label}, {hold:g} s), {lock_mode} lock")
            people = users_for(seed + number, requests)
            calls = party_sessions(event_id, people, seed + number, parties, cancels, partial)
            if kind == "tables":
                holder = tables_locked(database_url)
            else:
                holder = event_row_locked(database_url, event_id)
            # The extra load starts before the lock is taken (it makes its own events)
            # and stops after the release.
            with beside(alongside, gunicorn.url), holder:
                held_at = time.monotonic()
                storm = paced_storm(gunicorn.url, calls, concurrency=concurrency or requests)
                # A read meanwhile: answered (200, or a 503 when a WRITE table lock
                # blocks readers too), and in bounded time.
                started = time.monotonic()
                try:
                    status = httpx.get(f"{gunicorn.url}/api/events/status/{event_id}", timeout=30)
                    read = f"{status.status_code} in {time.monotonic() - started:.2f} s"
                    if status.status_code not in (200, 503):
                        report.violated(f"status read while held: {read}")
                except httpx.TransportError as error:
                    read = f"no answer: {error}"
                    report.violated(f"status read while held: {read}")
                time.sleep(max(0.0, held_at + hold - time.monotonic()))
                released = time.monotonic()
            report.count(storm.results)
            check_answers(report, storm.results, {503}, "while held")
            slowest = max(a.latency for a in storm.results)
            if slowest > bound:
                report.violated(f"a request waited {slowest:.2f} s for its 503 (bound {bound} s)")
            truth = read_truth(database_url)[0][event_id]
            stored = set(people) & (set(truth.booked) | set(truth.waiting))
            if stored:
                report.violated(f"refused with 503 but stored: {sorted(stored)}")
            after = paced_storm(gunicorn.url, calls, concurrency=requests)
            report.count(after.results)
            check_answers(report, after.results, ACKNOWLEDGED, "after release")
            report.recovery_of = "release -> last retry 201"
            report.recovery = max(a.answered for a in after.results) - released
            truth = report.check_invariants(database_url, gunicorn.url, admin)[event_id]
            report.violations += told_violations([*storm.results, *after.results], truth)
            if not cancels:
                report.violations += acknowledged_violations(after.results, truth)
            if held := lingering_locks(database_url):
                report.violated(f"locks left behind: {held}")
            latencies = sorted(a.latency for a in storm.results)
            report.figures.update(
                held=f"{released - held_at:.2f} s by another session; LOCK_TIMEOUT={lock_timeout}",
                while_held=(
                    f"{storm.summary()}; waits for the 503 (s):"
                    f" {', '.join(f'{x:.2f}' for x in latencies)}"
                ),
                status_read_while_held=read,
                after_release=after.summary(),
            )
            reports.append(report)
        for report in reports:
            logged_errors(report, gunicorn)
    finally:
        gunicorn.stop()
    return reports


# ---------------------------------------------------------------------------
# 3. A worker, then the master, SIGKILLed mid-storm; a new server takes over


def killed_master(
    database_url: str,
    admin_password: str,
    workdir: Path,
    *,
    users: int = 300,
    tickets: int = 50,
    concurrency: int = 32,
    rate: float | None = None,
    kill_workers_at: tuple[float, ...] = (0.25,),
    kill_master_at: float = 0.5,
    lock_mode: str = "table",
    workers: int = 4,
    grace: float = 2.0,
    seed: int = 53,
    parties: int = 1,
    cancels: float = 0.0,
    partial: float = 0.5,
    log_level: str = "ERROR",
    alongside: Alongside | None = None,
) -> Report:
    """`users` book `tickets`; after `kill_workers_at` of the answers a worker serving
    a request is SIGKILLed, after `kill_master_at` the master. Its workers must be
    gone (on their own within `grace` s, else killed by pid) before a new gunicorn
    starts on the same database, retries what went unanswered and books on: a
    newcomer and a cancel answered as the reference model (tests/model.py) says.
    Parties of 1..`parties` tickets; a share `cancels` of the users cancel (part, for a
    share `partial`) once booked or waitlisted (party_sessions)."""
    report = Report(f"killed worker + master, {lock_mode} lock")
    admin = basic_auth("admin", admin_password)
    people = users_for(seed, users)
    gunicorn = start_server(
        database_url,
        admin_password,
        workdir,
        f"killed-{lock_mode}-1",
        workers=workers,
        BOOKING_LOCK=lock_mode,
        log_level=log_level,
    )
    master = gunicorn.process.pid
    orphans: dict[int, int] = {}
    killed: list[str] = []
    master_killed = False
    try:
        first_workers = wait_for_workers(master, workers, gone=set())
        # The leftover sweep below finds a server's processes by its listening socket.
        if set(processes_listening_on(gunicorn.port)) != {master} | first_workers:
            report.violated("the sweep does not see the server's master and workers")
        event_id = initialize(gunicorn.url, admin, "Killed master", tickets)
        rng = random.Random(seed)
        workers_at = {int(users * at) for at in kill_workers_at}
        master_at = int(users * kill_master_at)

        def kill_a_worker(answered: int) -> None:
            # A little after an answer, not on it: the worker that sent that answer
            # may still hold its socket. Pick one serving a request, so the kill
            # swallows an answer (perhaps of a booking it committed).
            time.sleep(0.01)
            pids = worker_pids(master)
            for _ in range(20):
                if busy := busy_workers(pids, gunicorn.port):
                    break
            victim = rng.choice(sorted(busy or pids))
            os.kill(victim, signal.SIGKILL)
            killed.append(f"{victim} ({'serving' if busy else 'idle'}) after {answered}")

        killers: list[threading.Thread] = []

        def on_answer(_answer: Answer, answered: int) -> None:
            nonlocal master_killed
            if answered in workers_at:
                killers.append(threading.Thread(target=kill_a_worker, args=(answered,)))
                killers[-1].start()
            elif answered == master_at:
                for killer in killers:  # the worker kills come first
                    killer.join()
                for pid in worker_pids(master):
                    if (started := start_time(pid)) is not None:
                        orphans[pid] = started
                os.kill(master, signal.SIGKILL)
                master_killed = True

        with beside(alongside, gunicorn.url):
            storm = paced_storm(
                gunicorn.url,
                party_sessions(event_id, people, seed, parties, cancels, partial),
                concurrency=concurrency,
                rate=rate,
                on_answer=on_answer,
            )
        gunicorn.process.wait(10)  # reap the master
    finally:
        if gunicorn.process.poll() is None:  # the kill never came: do not leave it running
            gunicorn.stop(signal.SIGKILL)
        # The workers of a SIGKILLed master exit when they next notice; kill the rest by pid.
        on_their_own, by_us = kill_leftovers(orphans, grace)
        # And anything else of that server's (a worker forked as the master died).
        _, stragglers = kill_leftovers(processes_listening_on(gunicorn.port), 0)
    answers = storm.results
    report.count(answers)
    if not master_killed or len(killed) != len(kill_workers_at):
        report.violated(
            f"the storm ended before the kills: workers {killed}, master {master_killed}"
        )
    check_answers(report, answers, {*ACKNOWLEDGED, 503, TRANSPORT_ERROR}, "storm")
    if remaining := processes_listening_on(gunicorn.port):
        report.violated(f"processes of the killed server still running: {sorted(remaining)}")
    if stragglers:
        report.violated(f"{stragglers} process(es) of the killed server were not its workers")

    # A new server on the same database.
    restart = time.monotonic()
    replacement = start_server(
        database_url,
        admin_password,
        workdir,
        f"killed-{lock_mode}-2",
        workers=workers,
        BOOKING_LOCK=lock_mode,
        log_level=log_level,
    )
    try:
        wait_for_workers(replacement.process.pid, workers, gone=set())
        wait_until_ready(replacement.url)
        report.recovery_of = "new server started -> /readyz 200"
        report.recovery = time.monotonic() - restart
        unanswered = [a.call for a in answers if a.status is None or a.status == 503]
        retried = retry(report, replacement.url, unanswered)
        truth = report.check_invariants(database_url, replacement.url, admin)[event_id]
        report.violations += told_violations([*answers, *retried], truth)
        if not cancels:  # the line only grew, and nobody left
            report.violations += acknowledged_violations([*answers, *retried], truth)
            stored = set(truth.booked) | set(truth.waiting)
            if stored != set(people):
                report.violated(f"{len(set(people) - stored)} users missing after retries")
        kept = sum(1 for a in retried if a.status in (404, 409))  # applied, answer lost
        lost_answers = sum(1 for a in answers if a.status is None)
        report.data.update(unanswered=lost_answers, committed_unanswered=kept)

        # It books normally: a newcomer joins the line (or is booked, if it fits and
        # nobody blocks), a cancel serves whom the allocation says; as the model says.
        model = model_of(truth)
        newcomer = max(people) + 1
        party = random.Random(seed).randint(1, parties)
        leaving = truth.booked[0] if truth.booked else None
        with httpx.Client(base_url=replacement.url, timeout=30) as http:
            booking = book_call(event_id, newcomer, party_sent(party, parties))
            joined = http.post(booking.path, json=booking.json)
            report.violations += model_differs("newcomer", joined, 201, model.book, newcomer, party)
            report.requests += 1
            report.acknowledged += joined.status_code == 201
            if leaving is not None:
                cancelled = http.post(
                    "/api/events/cancel", json={"userId": leaving, "eventId": event_id}
                )
                report.violations += model_differs("cancel", cancelled, 200, model.cancel, leaving)
                report.requests += 1
                report.acknowledged += cancelled.status_code == 200
            else:
                cancelled = None
        after = report.check_invariants(database_url, replacement.url, admin)[event_id]
        if after.parties != [(p.user, p.tickets, p.overtakes) for p in model.line]:
            report.violated(
                f"the line after newcomer + cancel: {after.parties[:10]}...,"
                f" the model's {[(p.user, p.tickets, p.overtakes) for p in model.line][:10]}..."
            )
        if after.booked_tickets != model.booked:
            report.violated("the bookings after newcomer + cancel are not the model's")
        logged_errors(report, gunicorn)
        logged_errors(report, replacement)
        report.figures.update(
            storm=storm.summary(),
            kills=(
                f"SIGKILL worker {', '.join(killed)} answers; master {master} after"
                f" {master_at}; its {len(orphans)} workers: {on_their_own} exited on their own"
                f" within {grace:g} s, {by_us} killed by pid"
            ),
            unanswered=(
                f"{lost_answers} requests without an answer, of which committed anyway: {kept};"
                f" retried on the new server: {dict(Counter(a.kind for a in retried))}"
            ),
            database=(
                f"{tables_hold(truth)} before the newcomer; newcomer of {party}:"
                f" {joined.status_code} {answer_said(joined.status_code, joined.json())}"
                f" {joined.json().get('position', '')}; cancel of user {leaving}'s"
                f" {truth.booked_tickets.get(leaving)} promoted"
                f" {cancelled.json().get('promotedUserIds') if cancelled is not None else '-'}"
                f" (head was {truth.parties[0] if truth.parties else None})"
            ),
        )
    finally:
        replacement.stop()
    return report


# ---------------------------------------------------------------------------
# 4. Clients that go away mid-request


def clients_gone(
    database_url: str,
    admin_password: str,
    workdir: Path,
    *,
    per_kind: int = 6,
    stall: float = 0.5,
    normal: int = 40,
    lock_mode: str = "table",
    workers: int = 4,
    lock_timeout: int = 2,
    seed: int = 54,
    parties: int = 1,
    cancels: float = 0.0,
    partial: float = 0.5,
    log_level: str = "ERROR",
    alongside: Alongside | None = None,
) -> Report:
    """`per_kind` clients of each RAW_KINDS kind go away mid-request, all at once;
    afterwards no lock or transaction is left and a normal client books promptly.
    Parties of 1..`parties` tickets; a share `cancels` of the `normal` clients cancel
    (part, for a share `partial`) once booked or waitlisted (party_sessions)."""
    report = Report(f"clients gone mid-request, {lock_mode} lock")
    admin = basic_auth("admin", admin_password)
    people = users_for(seed, per_kind * len(RAW_KINDS) + normal + 2)
    rng = random.Random(seed)
    party = {user: rng.randint(1, parties) for user in people}
    gunicorn = start_server(
        database_url,
        admin_password,
        workdir,
        f"gone-{lock_mode}",
        workers=workers,
        LOCK_TIMEOUT=lock_timeout,
        BOOKING_LOCK=lock_mode,
        log_level=log_level,
    )
    try:
        master = gunicorn.process.pid
        before = wait_for_workers(master, workers, gone=set())
        # About as many parties as applied (the abandoned and reset ones may be) get in.
        capacity = (normal + per_kind * 2) * (parties + 1) // 2
        event_id = initialize(gunicorn.url, admin, "Clients gone", capacity)
        jobs = [
            (kind, people[number * per_kind + i])
            for number, kind in enumerate(RAW_KINDS)
            for i in range(per_kind)
        ]
        random.Random(seed).shuffle(jobs)
        # The extra load runs while the clients go away, stops for the check that nothing
        # is held (its own batches would hold the tables), and runs again beside the
        # normal bookings.
        with beside(alongside, gunicorn.url):
            with ThreadPoolExecutor(max_workers=32) as pool:
                failures = list(
                    pool.map(
                        lambda job: raw_post(
                            gunicorn.port,
                            "/api/events/book",
                            book_call(event_id, job[1], party_sent(party[job[1]], parties)).json,
                            job[0],
                            stall=stall,
                        ),
                        jobs,
                    )
                )
            if failed := [f for f in failures if f]:
                report.violated(f"{len(failed)} raw clients could not even connect: {failed[0]}")
            # Right away, one normal booking: nothing may hold the lock any more.
            gone = time.monotonic()
            first = paced_storm(
                gunicorn.url,
                [book_call(event_id, people[-2], party_sent(party[people[-2]], parties))],
                concurrency=1,
            )
        report.count(first.results)
        check_answers(report, first.results, {201}, "first normal booking afterwards")
        report.recovery_of = "last client gone -> a normal booking answered"
        report.recovery = first.results[0].answered - gone
        if held := lingering_locks(database_url):
            report.violated(f"locks or transactions left behind: {held}")
        calls = party_sessions(event_id, people[-normal - 2 : -2], seed, parties, cancels, partial)
        with beside(alongside, gunicorn.url):
            after = paced_storm(gunicorn.url, calls, concurrency=8)
        report.count(after.results)
        check_answers(report, after.results, ACKNOWLEDGED, "normal clients afterwards")
        slowest = max(a.latency for a in after.results)
        if slowest >= lock_timeout:
            report.violated(f"a normal booking took {slowest:.2f} s: something held the lock")
        workers_now = worker_pids(master)
        if workers_now != before:
            report.violated(f"workers changed: {sorted(before)} -> {sorted(workers_now)}")
        # A body shorter than its Content-Length, answered: what does the server do?
        short = raw_post_half_close(
            gunicorn.port,
            "/api/events/book",
            book_call(event_id, people[-1], party_sent(party[people[-1]], parties)).json,
        )
        truth = report.check_invariants(database_url, gunicorn.url, admin)[event_id]
        report.violations += told_violations([*first.results, *after.results], truth)
        if not cancels:
            report.violations += acknowledged_violations([*first.results, *after.results], truth)
        if held := lingering_locks(database_url):
            report.violated(f"locks or transactions left behind at the end: {held}")
        logged_errors(report, gunicorn)
        stored = set(truth.booked) | set(truth.waiting)
        applied = Counter(kind for kind, user in jobs if user in stored)
        short_status = short.split(b"\r\n", 1)[0].decode(errors="replace")
        report.figures.update(
            gone=(
                f"{len(jobs)} raw clients ({per_kind} each of {', '.join(RAW_KINDS)};"
                f" stalled ones wait {stall:g} s) went away; applied anyway:"
                f" {', '.join(f'{k} {applied[k]}/{per_kind}' for k in RAW_KINDS)}"
            ),
            afterwards=(
                f"first booking {report.recovery:.3f} s; then {after.summary()};"
                f" slowest {slowest:.3f} s; the same {len(workers_now)} workers:"
                f" {workers_now == before}"
            ),
            short_body=(
                "body 64 bytes shorter than its Content-Length, then half-close: answered"
                f" {short_status!r}, applied: {people[-1] in stored}"
            ),
        )
        report.data.update(
            short_body_status=int(short.split(b" ", 2)[1]),
            short_body_applied=people[-1] in stored,
            truncated_applied=applied["truncated"],
        )
    finally:
        gunicorn.stop()
    return report
