"""Checkout holds under concurrency (issue 21, "Races to prove"), through real gunicorn
with 4 workers on MariaDB, in both lock modes.

- A rush: 1,000 buyers at once on 100 tickets get exactly 100 holds, the rest wait in
  line. Then one storm: 60 holders claim, 20 release, 20 holds lapse and 200 new buyers
  arrive, while a worker runs and the tickets taken are sampled. Never more than 100
  tickets are booked + offered + held; the freed tickets reach the head of the line, in
  order; each hold ends exactly once in the journal.
- A claim racing its own lapse: 40 holds lapse in groups, a few ms from their claims
  (sent from 10 ms after the expiry, by the database's clock, to as long before it as a
  claim takes to be decided). Each books (201) or is refused (409 no-offer), never both,
  never 5xx; a claim sent after the expiry is refused, one answered before it books; each
  hold ends once (claimed xor expired) and no ticket is lost or counted twice.
- A worker SIGKILLed while it settles lapsed holds of idle events: the next worker
  settles the rest; each hold lapses exactly once and its tickets reach the line.

Time is moved, not waited for: a hold lapses when the test moves its expires_at in the
database, into the past or a few ms ahead of the database's clock.
"""

import asyncio
import json
import random
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from .conftest import ADMIN_PASSWORD, basic_auth, wipe
from .invariants import check_invariants
from .receivers import worker_processes
from .servers import Gunicorn
from .storm import Call, run_storm

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADMIN = basic_auth("admin", ADMIN_PASSWORD)
IN_FLIGHT = 64
WORKERS = 4
HOLD_TTL = 600  # outlasts every storm here: holds lapse only when the test says so
HOLD_ENDS = ("hold.claimed", "hold.released", "hold.expired")


@pytest.fixture
def server(mysql_database_url, tmp_path, lock_mode):
    wipe(mysql_database_url)
    with Gunicorn(
        mysql_database_url,
        ADMIN_PASSWORD,
        workers=WORKERS,
        output=tmp_path / "gunicorn.log",
        BOOKING_LOCK=lock_mode,
        LOG_FILE=str(tmp_path / "booking.log"),
        LOG_LEVEL="WARNING",
    ) as running:
        yield running


@pytest.fixture
def worker(mysql_database_url, tmp_path, lock_mode):
    """A `flask worker` process (not started) in the server's lock mode."""
    with worker_processes(
        mysql_database_url, tmp_path, BOOKING_LOCK=lock_mode, LOG_LEVEL="WARNING"
    ) as make:
        yield make


# The service, over HTTP.


def hold_event(url: str, total: int, mode: str = "auto") -> int:
    body = {"eventName": "Holds", "totalTickets": total, "holdTtlSeconds": HOLD_TTL}
    response = httpx.post(
        f"{url}/api/events/initialize", json={**body, "waitlistMode": mode}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    return response.json()["eventId"]


def calls(path: str, event_id: int, users) -> list[Call]:
    return [
        Call("POST", f"/api/events/{path}", {"userId": u, "eventId": event_id}, tag=(path, u))
        for u in users
    ]


def book_all(url: str, event_id: int, users) -> dict[int, dict]:
    """Everyone books at once; each user's answer (all 201)."""
    storm = run_storm(url, calls("book", event_id, users), concurrency=IN_FLIGHT)
    assert storm.statuses() == {201: len(storm.results)}, storm.summary()
    return {r.call.tag[1]: r.body for r in storm.results}


def waiting_list(url: str, event_id: int) -> list[int]:
    response = httpx.get(f"{url}/api/events/{event_id}/waiting-list", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()["userIds"]


def unexpected(storm, allowed) -> list:
    return [(r.call.tag, r.kind, r.body or r.error) for r in storm.results if r.kind not in allowed]


# The database, read and moved directly.


def query(database_url: str, sql: str, **params) -> list[tuple]:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def facts(database_url: str, event_id: int, *types: str) -> list[tuple[str, int, dict]]:
    """The event's journal entries of `types`, in the order they were written:
    (type, user, data). One event's changes are serialized by its lock."""
    rows = query(
        database_url,
        "SELECT type, user_id, data FROM journal_entries WHERE event_id = :e"
        " AND type IN :types ORDER BY id",
        e=event_id,
        types=types,
    )
    return [(type_, user, json.loads(data)) for type_, user, data in rows]


def hold_stories(database_url: str, event_id: int) -> dict[int, Counter]:
    """Per user, how many of each hold fact the journal holds."""
    found: dict[int, Counter] = {}
    for type_, user, _ in facts(database_url, event_id, "hold.created", *HOLD_ENDS):
        found.setdefault(user, Counter())[type_] += 1
    return found


def live_holds(database_url: str, event_id: int) -> list[tuple]:
    """The event's live holds: (user, expires_at, the database's clock now)."""
    return query(
        database_url,
        "SELECT user_id, expires_at, UTC_TIMESTAMP(6) FROM offers"
        " WHERE event_id = :e AND kind = 'hold'",
        e=event_id,
    )


def lapse(database_url: str, event_id: int | None = None, users=None) -> int:
    """The holds (of `users` of `event_id`, if given) lapsed a day ago; how many."""
    where = ["kind = 'hold'"]
    params: dict = {}
    if event_id is not None:
        where.append("event_id = :e")
        params["e"] = event_id
    if users is not None:
        where.append("user_id IN :users")
        params["users"] = tuple(users)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            return conn.execute(
                sa.text(
                    "UPDATE offers SET expires_at = expires_at - INTERVAL 1 DAY"
                    f" WHERE {' AND '.join(where)}"
                ),
                params,
            ).rowcount
    finally:
        engine.dispose()


def wait_until(what, done, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not done(found := what()):
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


class TakenSampler(threading.Thread):
    """Reads an event's tickets taken, over and over until stopped, each time in one
    snapshot: booked + offered + held from the rows, and total - available from the
    events row. The most of each seen."""

    SQL = sa.text(
        "SELECT (SELECT COALESCE(SUM(tickets), 0) FROM bookings WHERE event_id = :e)"
        " + (SELECT COALESCE(SUM(tickets), 0) FROM offers WHERE event_id = :e),"
        " (SELECT total_tickets - available_tickets FROM events WHERE id = :e)"
    )

    def __init__(self, database_url: str, event_id: int):
        super().__init__(daemon=True)
        self.database_url, self.event_id = database_url, event_id
        self.samples = self.most_in_rows = self.most_in_event = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        engine = sa.create_engine(self.database_url)
        try:
            while not self.stopping.is_set():
                with engine.connect() as conn:
                    in_rows, in_event = conn.execute(self.SQL, {"e": self.event_id}).one()
                self.samples += 1
                self.most_in_rows = max(self.most_in_rows, int(in_rows))
                self.most_in_event = max(self.most_in_event, int(in_event))
                self.stopping.wait(0.01)
        except BaseException as error:  # handed to the test thread
            self.error = error
        finally:
            engine.dispose()

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        if self.error is not None:
            raise self.error


def storm_answers(storm) -> list[int]:
    """Every answer of the claims, releases, bookings and status reads is what it must
    be; whom the releases promoted."""
    by_kind: dict[str, list] = {}
    for result in storm.results:
        by_kind.setdefault(result.call.tag[0], []).append(result)
    assert not storm.errors(), unexpected(storm, {200, 201})[:10]
    for result in by_kind["claim"]:
        claimed = result.body
        assert result.status == 201, claimed
        assert (claimed["status"], claimed["tickets"], claimed["releasedTickets"]) == (
            "booked", 1, 0,
        ), claimed  # fmt: skip
    released_to = []
    for result in by_kind["cancel"]:
        assert result.status == 200, result.body
        assert (result.body["status"], result.body["tickets"]) == ("released_hold", 1)
        assert len(result.body["promotedUserIds"]) == 1 and result.body["offeredUserIds"] == []
        released_to += result.body["promotedUserIds"]
    for result in by_kind["book"]:  # no ticket is ever free while the line is long
        assert (result.status, result.body["status"]) == (201, "waitlisted"), result.body
    for result in by_kind["status"]:  # booked = total - available - held - offered >= 0
        assert result.status == 200, result.body
        body = result.body
        assert body["availableTickets"] >= 0, body
        assert body["availableTickets"] + body["heldTickets"] + body["offeredTickets"] <= 100
    return released_to


# 1. The rush, then claims, releases, lapses and new buyers in one storm.


def test_1000_buyers_hold_100_tickets_then_claims_releases_and_lapses_keep_the_count(
    server, mysql_database_url, worker, lock_mode
):
    started = time.perf_counter()
    rng = random.Random(21)
    users = rng.sample(range(1, 1_000_000), 1200)
    buyers, newcomers = users[:1000], users[1000:]
    event_id = hold_event(server.url, 100)

    rush = run_storm(server.url, calls("book", event_id, buyers), concurrency=IN_FLIGHT)
    assert rush.statuses() == {201: 1000}, unexpected(rush, {201})[:10]
    held, position_of = [], {}
    for result in rush.results:
        body, user = result.body, result.call.tag[1]
        if body["status"] == "held":
            assert body.pop("holdExpiresAt").endswith("Z")
            assert body == {"status": "held", "eventId": event_id, "userId": user, "tickets": 1}
            held.append(user)
        else:
            assert body["status"] == "waitlisted", body
            position_of[user] = body["position"]
    assert len(held) == 100
    assert sorted(position_of.values()) == list(range(1, 901))
    line = waiting_list(server.url, event_id)
    assert line == sorted(position_of, key=position_of.get)
    truth = check_invariants(mysql_database_url, server.url, ADMIN)[event_id]
    assert truth.hold_tickets == dict.fromkeys(held, 1) and truth.held_tickets == 100
    assert (truth.available, truth.booked, truth.offered) == (0, [], [])

    rng.shuffle(held)
    claiming, releasing, lapsing = held[:60], held[60:80], held[80:]
    storm_calls = [
        *calls("claim", event_id, claiming),
        *calls("cancel", event_id, releasing),
        *calls("book", event_id, newcomers),
        *(Call("GET", f"/api/events/status/{event_id}", tag=("status", i)) for i in range(100)),
    ]
    rng.shuffle(storm_calls)
    # The 20 holds lapse a little into the storm, from another thread.
    go = threading.Event()
    lapsed = []
    lapser = threading.Thread(
        target=lambda: go.wait(60) and lapsed.append(lapse(mysql_database_url, event_id, lapsing))
    )
    sampler = TakenSampler(mysql_database_url, event_id)
    with worker():
        lapser.start()
        sampler.start()
        try:
            storm = run_storm(
                server.url,
                storm_calls,
                concurrency=IN_FLIGHT,
                on_result=lambda _, answered: answered == 60 and go.set(),
            )
            lapser.join(60)
            assert lapsed == [20]
            released_to = storm_answers(storm)
            # Changes after the lapse settle it, or the worker does: no hold is left.
            wait_until(lambda: live_holds(mysql_database_url, event_id), lambda left: not left)
        finally:
            sampler.stop()

    assert sampler.most_in_rows <= 100 and sampler.most_in_event <= 100, vars(sampler)

    # The 40 freed tickets went to the first 40 in line, in line order; the rest still wait.
    promoted = [user for _, user, _ in facts(mysql_database_url, event_id, "booking.promoted")]
    assert promoted == line[:40]
    expired = facts(mysql_database_url, event_id, "hold.expired")
    lapsed_to = {user for _, _, data in expired for user in data["promotedUserIds"]}
    assert sorted(released_to + sorted(lapsed_to)) == sorted(line[:40])
    assert len(lapsed_to) == 20 and not lapsed_to & set(released_to)
    # Each hold ended exactly once, the way its holder chose.
    stories = hold_stories(mysql_database_url, event_id)
    assert stories.keys() == set(held)
    ends = [(claiming, "hold.claimed"), (releasing, "hold.released"), (lapsing, "hold.expired")]
    for group, end in ends:
        for user in group:
            assert stories[user] == Counter({"hold.created": 1, end: 1}), (user, stories[user])
    truth = check_invariants(mysql_database_url, server.url, ADMIN, 2 * WORKERS)[event_id]
    assert truth.held_tickets == 0 and truth.hold_tickets == {}
    assert truth.booked_tickets == dict.fromkeys(claiming + line[:40], 1)
    assert (truth.available, truth.offered) == (0, [])
    assert truth.waiting[:860] == line[40:] and set(truth.waiting[860:]) == set(newcomers)
    print(
        f"\n[holds, {lock_mode} lock] 1000 buyers, 100 tickets, {WORKERS} workers:"
        f" rush {rush.summary()} | 60 claim, 20 release, 20 lapse, 200 book:"
        f" {storm.summary()} | taken at most {sampler.most_in_rows} (rows),"
        f" {sampler.most_in_event} (event row) in {sampler.samples} samples"
        f" | test wall={time.perf_counter() - started:.2f}s"
    )


# 2. A claim racing its own lapse.


def database_clock(database_url: str) -> float:
    """How far the database's clock is ahead of time.time(), in seconds: from the
    quickest of 20 reads on one open connection, taken at the middle of its round trip."""
    engine = sa.create_engine(database_url)
    samples = []
    try:
        with engine.connect() as conn:
            for _ in range(20):
                before = time.time()
                now = conn.execute(sa.text("SELECT UTC_TIMESTAMP(6)")).scalar_one()
                after = time.time()
                ahead = now.replace(tzinfo=UTC).timestamp() - (before + after) / 2
                samples.append((after - before, ahead))
    finally:
        engine.dispose()
    return min(samples)[1]


def naive_utc(at: float) -> datetime:
    """A time.time() as the columns store it (UTC, naive)."""
    return datetime.fromtimestamp(at, UTC).replace(tzinfo=None)


async def _claims_at(url: str, event_id: int, plan: dict[int, float]) -> dict[int, tuple]:
    """Each user's claim sent at its time.time() in `plan`: (status, body, sent, answered)."""
    found = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def claim(user: int, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.time()))
            sent = time.time()
            response = await client.post(
                "/api/events/claim", json={"userId": user, "eventId": event_id}
            )
            found[user] = (response.status_code, response.json(), sent, time.time())

        await asyncio.gather(*(claim(user, at) for user, at in plan.items()))
    return found


def claim_latency(url: str, event_id: int) -> float:
    """The median time, in seconds, 8 claims at once by users who hold nothing take to be
    refused: the same way through the service as a real claim."""
    plan = dict.fromkeys(range(10_001, 10_009), time.time())
    answers = asyncio.run(_claims_at(url, event_id, plan)).values()
    assert {status for status, *_ in answers} == {409}, answers
    return sorted(answered - sent for _, _, sent, answered in answers)[4]


def test_a_claim_racing_its_own_lapse_books_or_is_refused_never_both(
    server, mysql_database_url, worker, lock_mode
):
    started = time.perf_counter()
    rng = random.Random(2121)
    event_id = hold_event(server.url, 40)
    holders, waiters = list(range(1, 41)), list(range(41, 101))
    assert {b["status"] for b in book_all(server.url, event_id, holders).values()} == {"held"}
    assert {b["status"] for b in book_all(server.url, event_id, waiters).values()} == {"waitlisted"}
    line = waiting_list(server.url, event_id)

    with worker():
        time.sleep(1.0)  # the worker is up: it races the claims to settle the lapses
        # 5 groups of 8 holds; a group's holds lapse together, groups 100 ms apart. Each
        # claim is sent between 10 ms after its hold's expiry and 15 ms more before it than
        # a claim takes to be answered now, so that both outcomes come.
        claim_latency(server.url, event_id)  # warm
        early = claim_latency(server.url, event_id) + 0.015
        skew = database_clock(mysql_database_url)
        first = time.time() + skew + early + 0.5
        expires = {user: first + (i // 8) * 0.1 for i, user in enumerate(holders)}
        engine = sa.create_engine(mysql_database_url)
        with engine.begin() as conn:
            for user, at in expires.items():
                conn.execute(
                    sa.text(
                        "UPDATE offers SET expires_at = :at WHERE event_id = :e AND user_id = :u"
                    ),
                    {"at": naive_utc(at), "e": event_id, "u": user},
                )
        engine.dispose()
        offset = {user: rng.uniform(-early, 0.010) for user in holders}
        plan = {user: expires[user] - skew + offset[user] for user in holders}
        assert time.time() < min(plan.values()) - 0.1, "setting the expiries took too long"
        answers = asyncio.run(_claims_at(server.url, event_id, plan))
        wait_until(lambda: live_holds(mysql_database_url, event_id), lambda left: not left)

    stories = hold_stories(mysql_database_url, event_id)
    late_booked, early_refused = [], []
    for user in holders:
        status, body, sent, answered = answers[user]
        assert status in (201, 409), (user, status, body)
        if status == 201:
            assert (body["status"], body["tickets"]) == ("booked", 1), body
            end = "hold.claimed"
        else:
            assert body["type"] == "urn:booking:problem:no-offer", body
            assert "lapsed" in body["detail"], body
            end = "hold.expired"
        assert stories[user] == Counter({"hold.created": 1, end: 1}), (user, status, stories[user])
        # Margins of 2 ms for reading the two clocks.
        if status == 201 and sent + skew > expires[user] + 0.002:
            late_booked.append((user, round((sent + skew - expires[user]) * 1000, 1)))
        if status == 409 and answered + skew < expires[user] - 0.002:
            early_refused.append((user, round((answered + skew - expires[user]) * 1000, 1)))
    assert not late_booked, f"claims sent after the hold lapsed (ms late) booked: {late_booked}"
    assert not early_refused, f"claims answered before the lapse (ms) refused: {early_refused}"

    booked = [user for user in holders if answers[user][0] == 201]
    refused = len(holders) - len(booked)
    truth = check_invariants(mysql_database_url, server.url, ADMIN)[event_id]
    # Every lapsed hold's ticket went to the line, in order: no ticket lost or doubled.
    assert truth.booked_tickets == dict.fromkeys(booked + line[:refused], 1)
    assert (truth.held_tickets, truth.available, truth.offered) == (0, 0, [])
    assert truth.waiting == line[refused:]
    promoted = [user for _, user, _ in facts(mysql_database_url, event_id, "booking.promoted")]
    assert promoted == line[:refused]
    sent_late = sum(offset[user] > 0 for user in holders)
    ms = {user: round((answers[user][2] + skew - expires[user]) * 1000, 1) for user in holders}
    latest_booked = max((ms[user] for user in booked), default=None)
    earliest_refused = min((ms[user] for user in holders if user not in booked), default=None)
    print(
        f"\n[holds, {lock_mode} lock] 40 claims racing their lapse (sent"
        f" -{early * 1000:.0f}..+10 ms,"
        f" {sent_late} after it): {len(booked)} booked (the latest sent at {latest_booked} ms),"
        f" {refused} refused as no-offer (the earliest sent at {earliest_refused} ms);"
        f" test wall={time.perf_counter() - started:.2f}s"
    )


# 3. A worker killed while it settles.


def test_a_worker_killed_while_holds_lapse_leaves_the_next_to_settle_each_once(
    server, mysql_database_url, worker, lock_mode
):
    started = time.perf_counter()
    modes = ["auto", "offer"] * 6
    events = [hold_event(server.url, 5, mode) for mode in modes]
    lines = {}
    holding = run_storm(server.url, [c for e in events for c in calls("book", e, range(1, 6))])
    assert holding.outcomes() == {"held": 5 * len(events)}, holding.summary()
    waiting = run_storm(server.url, [c for e in events for c in calls("book", e, range(6, 16))])
    assert waiting.outcomes() == {"waitlisted": 10 * len(events)}, waiting.summary()
    for event_id in events:
        assert len(live_holds(mysql_database_url, event_id)) == 5
        lines[event_id] = waiting_list(server.url, event_id)
    assert lapse(mysql_database_url) == 5 * len(events)  # nobody changes these events now

    engine = sa.create_engine(mysql_database_url)  # one pooled connection: quick to ask

    def settled() -> int:
        """How many events have had their holds lapse."""
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT COUNT(DISTINCT event_id) FROM journal_entries"
                    " WHERE type = 'hold.expired'"
                )
            ).scalar_one()

    first = worker("first").start()
    deadline = time.monotonic() + 30
    while not settled():  # kill it at its first settled event: it is settling the rest
        assert time.monotonic() < deadline, "the first worker settled nothing"
    first.stop(signal.SIGKILL)
    by_first = settled()
    assert by_first < len(events), "the first worker settled every event before it was killed"
    with worker("second"):
        wait_until(settled, lambda n: n == len(events))
        wait_until(
            lambda: [live_holds(mysql_database_url, e) for e in events], lambda n: not any(n)
        )
    engine.dispose()

    truths = check_invariants(mysql_database_url, server.url, ADMIN)
    for event_id, mode in zip(events, modes, strict=True):
        line, truth = lines[event_id], truths[event_id]
        stories = hold_stories(mysql_database_url, event_id)
        assert stories == {u: Counter({"hold.created": 1, "hold.expired": 1}) for u in range(1, 6)}
        assert truth.held_tickets == 0 and truth.available == 0
        if mode == "auto":
            assert truth.booked_tickets == dict.fromkeys(line[:5], 1)
        else:
            assert truth.offered == line[:5] and truth.booked == []
        assert truth.waiting == line[5:]
        served = facts(mysql_database_url, event_id, "booking.promoted", "offer.created")
        assert [user for _, user, _ in served] == line[:5]
        # Lapsed together, freed together: one allocation, one served list for all five.
        expired = facts(mysql_database_url, event_id, "hold.expired")
        lists = {tuple(d["promotedUserIds"] + d["offeredUserIds"]) for _, _, d in expired}
        assert lists == {tuple(line[:5])}, lists
    print(
        f"\n[holds, {lock_mode} lock] worker SIGKILLed while settling {len(events)} idle"
        f" events ({5 * len(events)} holds lapsed): the first settled {by_first} events,"
        f" the second the rest, each once;"
        f" test wall={time.perf_counter() - started:.2f}s"
    )
