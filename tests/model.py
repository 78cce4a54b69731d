"""A reference model of the booking rules of issues 20, 21 and 22: parties, a waiting list
fair to them, checkout holds, and a scheduled on-sale with a random pre-queue.

Plain Python, no server and no database, written from the issues alone. The tests run it one
change at a time in commit order and compare its answers, its tables and its journal with the
service's. One event per model, with a clock of its own: `now` (seconds, from 0) moves only by
`advance(seconds)`. Offers and holds expire at their expiry; every change (book, cancel,
claim, change, a refused one too, and `settle()`, the worker's sweep of an idle event) first
settles what lapsed, as the service does under the event's lock.

Choices where the issues are silent (the service should match them, or we change them here):
- Answers are the response bodies without `eventId` and `userId` (the tests add those).
- Refusals: `ModelRefusal(problem, status, **extra)`, `problem` being the part after
  `urn:booking:problem:`. Book refuses in this order: sales-closed, already-booked,
  already-offered, already-held (`holdExpiresAt`), already-waiting (`position`),
  too-many-tickets (`maxTicketsPerBooking`, `totalTickets`): a user has at most one of
  booked, offered, held or waiting per event. Cancel and claim asking for more than the user
  has (or declining an offer or releasing a hold with other than its tickets):
  too-many-tickets with `userTickets`. Claim with neither an offer nor a hold: no-offer.
  `tickets` outside 1..1,000 is 400 `about:blank`, checked before anything else (nothing
  settles). A refused change still settles what lapsed first (as today).
- Every cancel answer carries `promotedUserIds`, `offeredUserIds`, `promotedUserId` and
  `offeredUserId` (see `outcome`), leaving the line too: a blocker that leaves lets the
  parties behind it be served. A shrunk party's answer has `position` after the
  allocation, or None if that allocation served it.
- Only a book's newcomer (a buyer present) is booked at once in offer mode, or held when
  `hold_ttl` > 0 (in either mode); a waiting party served later, or a party that shrinks and
  now fits, gets what the mode says (booked in auto, offered in offer), holds or not.
- The clock: an offer expires at `now + offer_ttl` and a hold at `now + hold_ttl`, both as
  they are when it is made (changing a TTL later moves no expiry; hold_ttl 0 stops new
  holds, those out stay). At its expiry it has lapsed (expiry <= now): a claim then is
  no-offer, because the claim settles it first. `advance` itself changes nothing.
- What lapsed is settled together: one offer.expired / hold.expired each, soonest expiry
  first, then line order (`Party.seq`, the order parties joined the line, which a hold or
  offer keeps in its `Deadline`), then one allocation. Its cause is the type of the group's
  first fact (offer.expired when all are offers, hold.expired when all are holds),
  causeUserId the user when exactly one lapsed (else None); every expired fact of the group
  carries that allocation's outcome. `time_passes(users)` (the tests whose service runs on
  the real clock) marks offers and holds lapsed without moving `now`: they settle first in
  their group, soonest expiry first, then in the order they were made (on a real clock every
  change is a later instant).
- A hold is claimed like an offer (all or fewer, the rest freed; with sales closed too) and
  released whole by cancel (`released_hold`, remainingTickets 0). A claim of everything
  runs the allocation too (a no-op).
- Journal data (`record`): booking.booked and hold.created {tickets, overtookUserIds} (the
  change's own fact, so no cause; hold.created's and offer.created's expiresAt are not
  modelled); waitlist.joined {tickets, position}; booking.promoted and offer.created
  {tickets, overtookUserIds, cause, causeUserId} (cause: the type of the fact that ran the
  allocation); booking.cancelled, waitlist.left, waitlist.reduced, offer.declined and
  hold.released {tickets, remainingTickets, +outcome}; offer.claimed and hold.claimed
  {tickets, releasedTickets, +outcome}; offer.expired and hold.expired {tickets, +outcome};
  event.updated {the fields sent, by API name, promotedUserIds, offeredUserIds}.
  `overtookUserIds` are the waiting parties counted one more overtake, in line order (a
  party larger than the event is never counted, so never listed). The served parties'
  facts follow the fact that caused them.
- Every accepted PATCH runs the allocation (a no-op when nothing that matters changed).
  Lowering maxOvertakes below a party's count keeps its count: it blocks until served.
  `totalTickets` below booked + offered + held is capacity-below-held with that `held`.
  `change` takes holdTtlSeconds (0..86,400) and offerTtlSeconds (1..604,800, docs/api.md).
- Times in answers are the model's numbers: a held booking answers {status: held, tickets,
  holdExpiresAt: now + hold_ttl} and already-held carries the same `holdExpiresAt`; the
  tests strip them or compare them with the clock they move. `status()` is the event
  object's rule fields, `offerTtlSeconds` left to the tests (they know it); `user_state` of
  a hold is {status: held, tickets} (without its holdExpiresAt, as an offer's state).
- `held` (the property) is what capacity-below-held calls held: booked + offered + held
  tickets; `holds` are the checkout holds themselves (`heldTickets`).
- `violations()` checks, besides issue 20's: booked + offered + held + available = total;
  one of booked / offered / held / waiting per user; every offer and hold has a `Deadline`
  whose expiry is after its creation; and, unless the clock moved (or time_passes marked
  some) since the last change, nothing lapsed is left unsettled. Offers or holds set from
  outside without a `Deadline` (a model built from a database) never lapse.
- The event.created fact is the test's to record (it knows the event's name and TTLs).

The scheduled on-sale (issue 22, /work/notes/contract22.md):
- `sales_open_at` is a time on the model's clock (None: no schedule); the model only
  compares it with `now` (`ahead`), so a replay may give any comparable value, or override
  `ahead`. `initialize(...)` is POST initialize: a salesOpenAt ahead makes the event
  **queueing** (sales_open false); one passed is only noted (an ordinary open event).
- While queueing a book that passes the refusals (sales-closed only when not queueing,
  then already-booked / -offered / -held / -waiting, then already-queued with
  `userTickets` and `salesOpenAt`, then too-many-tickets) queues the party: answer
  {status: queued, tickets, salesOpenAt} (HTTP 202), fact queue.joined {tickets,
  salesOpenAt}. The queue (`queue`, user -> tickets) has no order that matters. Cancel of
  a queued party: all leaves (queue.left) or fewer shrinks it (queue.reduced), {tickets,
  remainingTickets}; answer `left_queue` with the (empty) outcome lists; more than queued
  is too-many-tickets (userTickets). No allocation runs: nothing was freed. A claim by a
  queued user is no-offer. Its state is {status: queued, tickets}.
- The opening happens once: in `settle` (so first in any change, a refused one too, after
  the lapses; also the worker's empty change), at the first change once salesOpenAt is
  not ahead of the clock. Reads (`status`, `user_state`) never open it: they show the
  event queueing until a change does. PATCH opens it too (below).
- The opening's order is random in the service: the model takes it as an input (`open
  (order)`, or `next_order`, set before the change that opens; by default the order they
  queued in). It must be exactly the queued users. The facts: sale.opened {salesOpenAt,
  queuedParties, queuedTickets, booked, held, waitlisted} (user None), then each party in
  that order served as a booking is now (`arrive`): booking.booked / hold.created /
  waitlist.joined with `fromQueue: true` (and any waiting parties its walk serves, as a
  booking's would). Then sales are open, and whatever comes next comes after them all.
- PATCH (`change`): a salesOpenAt ahead (re)schedules: queueing true, salesOpen false, on
  an open event too (from then on bookings queue); sent with salesOpen false too, the
  same; with salesOpen true, 409 `queueing` (salesOpenAt: the time sent). On a queueing
  event a salesOpenAt not ahead, or salesOpen true, or both, opens it now (salesOpenAt
  stored as given, else the clock's `reading()`); salesOpen false (with a salesOpenAt not
  ahead or alone) is 409 `queueing` (salesOpenAt: the event's). A salesOpenAt not ahead on
  an event not queueing is only noted, salesOpen applied as before. The event.updated fact
  holds what was sent plus, when the change schedules or opens, `queueing` and
  `salesOpen` (and the salesOpenAt stored). The
  change's own allocation runs with its settings applied, before the opening: so the
  parties the PATCH serves are its own (its answer and fact list them), and each queued
  party then meets a settled event, exactly as a booking would.
- `violations()` adds: queueing => not sales_open and a salesOpenAt; not queueing => an
  empty queue; queued parties of at least one ticket; one of booked / offered / held /
  waiting / queued per user; and, unless the clock moved since the last change, no
  opening left due.
"""

import math
from dataclasses import dataclass, field

LIMIT = 1_000  # the API's bound on tickets, maxTicketsPerBooking and maxOvertakes
API_NAMES = {  # change()'s arguments as PATCH and event.updated name them
    "total": "totalTickets",
    "max_overtakes": "maxOvertakes",
    "max_tickets_per_booking": "maxTicketsPerBooking",
    "mode": "waitlistMode",
    "sales_open": "salesOpen",
    "hold_ttl": "holdTtlSeconds",
    "offer_ttl": "offerTtlSeconds",
    "sales_open_at": "salesOpenAt",
    "queueing": "queueing",  # not sent: what scheduling or opening sets, in the fact
}
BOUNDS = {
    "total": (0, 10**6),
    "max_overtakes": (0, LIMIT),
    "max_tickets_per_booking": (1, LIMIT),
    "hold_ttl": (0, 86_400),
    "offer_ttl": (1, 604_800),
}


class ModelRefusal(Exception):
    """A refused request: nothing changed (but what lapsed settled)."""

    def __init__(self, problem: str, status: int = 409, **extra):
        super().__init__(problem, status, extra)
        self.problem, self.status, self.extra = problem, status, extra


def outcome(promoted: list[int], offered: list[int]) -> dict:
    """Where an allocation sent the freed tickets, as cancel answers and the journal say it."""
    return {
        "promotedUserIds": promoted,
        "offeredUserIds": offered,
        "promotedUserId": promoted[0] if promoted else None,
        "offeredUserId": offered[0] if offered else None,
    }


def checked(number: int, low: int = 1, high: int = LIMIT) -> int:
    """The input rules (the HTTP layer's 400, before the event is touched)."""
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ModelRefusal("about:blank", status=400)
    return number


@dataclass
class Party:
    user: int
    tickets: int
    overtakes: int = 0
    # Its overtakes when maxOvertakes was last changed: a lowered bound does not undo them.
    grandfathered: int = 0
    seq: int = 0  # the order it joined the line: line order, also once served

    def entry(self) -> dict:
        return {"userId": self.user, "tickets": self.tickets, "overtakes": self.overtakes}


@dataclass
class Deadline:
    """When an offer or a hold was made and lapses, and what orders lapses that tie."""

    created: float
    expires: float
    seq: int  # the party's place in line order when it was served
    made: int  # the order offers and holds were made in (time_passes' tie-break)


NO_DEADLINE = Deadline(0.0, math.inf, 0, 0)  # an offer set from outside: it never lapses


@dataclass
class EventModel:
    total: int
    mode: str = "auto"
    max_tickets_per_booking: int = 10
    max_overtakes: int = 3
    sales_open: bool = True
    hold_ttl: int = 0  # seconds a buyer's tickets are held (0: booked at once)
    offer_ttl: int = 3600  # seconds an offer lasts
    booked: dict[int, int] = field(default_factory=dict)  # user -> tickets
    offered: dict[int, int] = field(default_factory=dict)  # user -> tickets, in offer order
    holds: dict[int, int] = field(default_factory=dict)  # user -> tickets, in hold order
    line: list[Party] = field(default_factory=list)  # waiting parties in line order
    deadlines: dict[int, Deadline] = field(default_factory=dict)  # of each offer and hold
    now: float = 0.0  # the clock, in seconds
    lapsed: set[int] = field(default_factory=set)  # marked by time_passes, not yet settled
    settled: bool = True  # no advance or time_passes since the last change
    joined: int = 0  # parties that joined the line so far (Party.seq)
    made: int = 0  # offers and holds made so far (Deadline.made)
    journal: list[tuple] = field(default_factory=list)  # (type, userId, data), commit order
    sales_open_at: object = None  # the scheduled on-sale's time, on the clock (None: none)
    queueing: bool = False  # bookings queue for the opening at sales_open_at
    queue: dict[int, int] = field(default_factory=dict)  # queued parties: user -> tickets
    next_order: list[int] | None = None  # the order the next opening serves the queue in

    @classmethod
    def initialize(cls, total: int, sales_open_at=None, **settings) -> "EventModel":
        """POST initialize: a salesOpenAt ahead of the clock queues bookings until then; one
        not ahead is only noted (an ordinary open event)."""
        event = cls(total, sales_open_at=sales_open_at, **settings)
        if sales_open_at is not None and event.ahead(sales_open_at):
            event.queueing, event.sales_open = True, False
        return event

    # --- reads ---
    @property
    def held(self) -> int:
        """Tickets not available: booked, offered or held (capacity-below-held's `held`)."""
        return sum(self.booked.values()) + sum(self.offered.values()) + sum(self.holds.values())

    @property
    def available(self) -> int:
        return self.total - self.held

    def party(self, user: int) -> Party | None:
        return next((p for p in self.line if p.user == user), None)

    def position(self, user: int) -> int | None:
        return next((i for i, p in enumerate(self.line, 1) if p.user == user), None)

    def entries(self) -> list[dict]:
        """The admin waiting list's `entries`."""
        return [p.entry() for p in self.line]

    def expires_at(self, user: int) -> float | None:
        """When the user's offer or hold lapses (None: they have neither)."""
        if user in self.offered or user in self.holds:
            return self.deadline(user).expires
        return None

    def deadline(self, user: int) -> Deadline:
        return self.deadlines.get(user, NO_DEADLINE)

    def status(self) -> dict:
        """The rule fields of the event object."""
        return {
            "totalTickets": self.total,
            "availableTickets": self.available,
            "offeredTickets": sum(self.offered.values()),
            "heldTickets": sum(self.holds.values()),
            "waitingListCount": len(self.line),
            "waitingTickets": sum(p.tickets for p in self.line),
            "maxTicketsPerBooking": self.max_tickets_per_booking,
            "maxOvertakes": self.max_overtakes,
            "waitlistMode": self.mode,
            "salesOpen": self.sales_open,
            "holdTtlSeconds": self.hold_ttl,
            "salesOpenAt": self.sales_open_at,
            "queueing": self.queueing,
            "queuedCount": len(self.queue),
            "queuedTickets": sum(self.queue.values()),
        }

    def user_state(self, user: int) -> dict:
        if user in self.booked:
            return {"status": "booked", "tickets": self.booked[user]}
        if user in self.offered:
            return {"status": "offered", "tickets": self.offered[user]}
        if user in self.holds:
            return {"status": "held", "tickets": self.holds[user]}
        if party := self.party(user):
            position = self.position(user)
            return {"status": "waitlisted", "tickets": party.tickets, "position": position,
                    "overtakes": party.overtakes}  # fmt: skip
        if user in self.queue:
            return {"status": "queued", "tickets": self.queue[user]}
        return {"status": "none"}

    def due(self) -> list[int]:
        """The offers and holds that lapsed and wait to be settled, in the order they lapse:
        those time_passes marked (soonest expiry, then the order made), then those of the
        clock (soonest expiry, then line order)."""
        clock = {u: self.deadline(u) for u in [*self.offered, *self.holds]}
        marked = [u for u in clock if u in self.lapsed]
        marked.sort(key=lambda u: (clock[u].expires, clock[u].made))
        timed = [u for u, c in clock.items() if u not in self.lapsed and c.expires <= self.now]
        return marked + sorted(timed, key=lambda u: (clock[u].expires, clock[u].seq))

    # --- time ---
    def ahead(self, at) -> bool:
        """Whether a salesOpenAt is still ahead of the clock."""
        return at > self.now

    def reading(self):
        """The clock's time, as PATCH salesOpen: true stores it in salesOpenAt."""
        return self.now

    def opening_due(self) -> bool:
        """The event queues and its hour has come: the next change opens it."""
        return self.queueing and not self.ahead(self.sales_open_at)

    def advance(self, seconds: float) -> None:
        """The clock moves on; what lapses is settled by the next change."""
        if seconds < 0:
            raise ValueError("the clock does not go back")
        self.now += seconds
        self.settled = False

    def time_passes(self, users=None) -> None:
        """These offers and holds (default all) reach their expiry without the clock moving
        (the service's tests move them there in the database); the next change settles them."""
        out = set(self.offered) | set(self.holds)
        self.lapsed |= out if users is None else set(users) & out
        self.settled = False

    def settle(self) -> dict:
        """What every change does first: what lapsed is freed together, then allocated once;
        then the on-sale opens if its hour has come."""
        users = self.due()
        self.lapsed, self.settled = set(), True
        went = self.lapse(users)
        if self.opening_due():
            self.open()
        return went

    def lapse(self, users) -> dict:
        """Offers and holds that lapse together are freed together, then the allocation runs
        once. `users` in the order they lapsed (see `due`); the journal's order in a replay."""
        facts = []
        for user in users:
            if user in self.offered or user in self.holds:
                kind = "offer.expired" if user in self.offered else "hold.expired"
                facts.append((kind, user, self.record(kind, user, tickets=self.end(user))))
        if not facts:
            return outcome([], [])
        cause, cause_user = facts[0][0], (facts[0][1] if len(facts) == 1 else None)
        went = outcome(*self.allocate(cause, cause_user))
        for _, _, data in facts:
            data.update(went)
        return went

    # --- changes ---
    def book(self, user: int, tickets: int = 1) -> dict:
        checked(tickets)
        self.settle()
        if not (self.sales_open or self.queueing):
            raise ModelRefusal("sales-closed")
        if user in self.booked:
            raise ModelRefusal("already-booked")
        if user in self.offered:
            raise ModelRefusal("already-offered")
        if user in self.holds:
            raise ModelRefusal("already-held", holdExpiresAt=self.expires_at(user))
        if position := self.position(user):
            raise ModelRefusal("already-waiting", position=position)
        if user in self.queue:
            raise ModelRefusal(
                "already-queued", userTickets=self.queue[user], salesOpenAt=self.sales_open_at
            )
        if tickets > self.max_tickets_per_booking:
            most = self.max_tickets_per_booking
            raise ModelRefusal(
                "too-many-tickets", maxTicketsPerBooking=most, totalTickets=self.total
            )
        if self.queueing:
            self.queue[user] = tickets
            self.record("queue.joined", user, tickets=tickets, salesOpenAt=self.sales_open_at)
            return {"status": "queued", "tickets": tickets, "salesOpenAt": self.sales_open_at}
        return self.arrive(user, tickets)

    def arrive(self, user: int, tickets: int, from_queue: bool = False) -> dict:
        """Serve one party that passed the refusals: it joins the back and the allocation
        decides. The opening calls it for each queued party (`from_queue`), in its order."""
        self.joined += 1
        self.line.append(Party(user, tickets, seq=self.joined))
        self.allocate("booking.booked", user, newcomer=user, from_queue=from_queue)
        if user in self.booked:
            return {"status": "booked", "tickets": tickets}
        if user in self.holds:
            return {"status": "held", "tickets": tickets, "holdExpiresAt": self.expires_at(user)}
        position = self.position(user)
        queued = {"fromQueue": True} if from_queue else {}
        self.record("waitlist.joined", user, tickets=tickets, position=position, **queued)
        return {"status": "waitlisted", "position": position, "tickets": tickets}

    def open(self, order: list[int] | None = None) -> dict:
        """The opening: sales open and every queued party is served, in `order` (the
        service's is random; default `next_order`, else the order they queued in), exactly
        as a booking would be served now. Counts of parties booked, held and waitlisted."""
        queued = list(self.queue)
        if order is None:
            order = queued if self.next_order is None else self.next_order
        self.next_order = None
        if sorted(order) != sorted(queued):
            raise ValueError(f"the opening's order {order} is not the queued users {queued}")
        parties = [(user, self.queue[user]) for user in order]
        self.queue, self.queueing, self.sales_open = {}, False, True
        data = self.record(
            "sale.opened",
            None,
            salesOpenAt=self.sales_open_at,
            queuedParties=len(parties),
            queuedTickets=sum(tickets for _, tickets in parties),
        )
        counts = {"booked": 0, "held": 0, "waitlisted": 0}
        for user, tickets in parties:
            counts[self.arrive(user, tickets, from_queue=True)["status"]] += 1
        data.update(counts)
        return counts

    def cancel(self, user: int, tickets: int | None = None) -> dict:
        if tickets is not None:
            checked(tickets)
        self.settle()
        if user in self.booked:
            have = self.booked[user]
            given = self.taken(tickets, have)
            self.booked[user] = have - given
            if not self.booked[user]:
                del self.booked[user]
            return self.freed("cancelled", "booking.cancelled", user, given, have - given)
        if user in self.offered or user in self.holds:  # declined or released whole
            offer = user in self.offered
            have = self.offered[user] if offer else self.holds[user]
            if tickets not in (None, have):
                raise ModelRefusal("too-many-tickets", userTickets=have)
            status, fact = ("declined_offer", "offer.declined") if offer else (
                "released_hold", "hold.released")  # fmt: skip
            return self.freed(status, fact, user, self.end(user), 0)
        party = self.party(user)
        if party is None and user in self.queue:  # nothing is freed: no allocation
            given = self.taken(tickets, self.queue[user])
            remaining = self.queue[user] - given
            if remaining:
                self.queue[user] = remaining
            else:
                del self.queue[user]
            fact = "queue.reduced" if remaining else "queue.left"
            self.record(fact, user, tickets=given, remainingTickets=remaining)
            return {"status": "left_queue", "tickets": given, "remainingTickets": remaining,
                    **outcome([], [])}  # fmt: skip
        if party is None:
            raise ModelRefusal("nothing-to-cancel", status=404)
        given = self.taken(tickets, party.tickets)
        if given == party.tickets:
            self.line.remove(party)
            return self.freed("left_waiting_list", "waitlist.left", user, given, 0)
        party.tickets -= given  # keeps its place and its overtakes
        answer = self.freed("left_waiting_list", "waitlist.reduced", user, given, party.tickets)
        return {**answer, "position": self.position(user)}

    def claim(self, user: int, tickets: int | None = None) -> dict:
        """Book an offer or a hold (all, or fewer: the rest are freed)."""
        if tickets is not None:
            checked(tickets)
        self.settle()
        if user not in self.offered and user not in self.holds:
            raise ModelRefusal("no-offer")
        fact = "offer.claimed" if user in self.offered else "hold.claimed"
        claimed = self.taken(tickets, self.offered.get(user) or self.holds[user])
        released = self.end(user) - claimed
        self.booked[user] = claimed
        data = self.record(fact, user, tickets=claimed, releasedTickets=released)
        data.update(went := outcome(*self.allocate(fact, user)))
        return {"status": "booked", "tickets": claimed, "releasedTickets": released,
                "promotedUserIds": went["promotedUserIds"],
                "offeredUserIds": went["offeredUserIds"]}  # fmt: skip

    def change(self, total=None, max_overtakes=None, max_tickets_per_booking=None, mode=None,
               sales_open=None, hold_ttl=None, offer_ttl=None,
               sales_open_at=None) -> dict:  # fmt: skip
        """PATCH: apply what was sent (None: not sent), then run the allocation; a schedule
        moved or opened as the module says (the opening after the allocation)."""
        sent = {n: v for n, v in dict(locals()).items() if n in API_NAMES and v is not None}
        if not sent or mode not in (None, "auto", "offer"):
            raise ModelRefusal("about:blank", status=400)
        for name, (low, high) in BOUNDS.items():
            if name in sent:
                checked(sent[name], low, high)
        self.settle()
        if "total" in sent and sent["total"] < self.held:
            raise ModelRefusal("capacity-below-held", held=self.held)
        opens = False
        if "sales_open_at" in sent and self.ahead(sent["sales_open_at"]):
            if sales_open:
                raise ModelRefusal("queueing", salesOpenAt=sent["sales_open_at"])
            sent.update(queueing=True, sales_open=False)
        elif self.queueing:
            if sales_open is False:
                raise ModelRefusal("queueing", salesOpenAt=self.sales_open_at)
            if "sales_open_at" in sent or sales_open:
                sent.update(queueing=False, sales_open=True)
                sent.setdefault("sales_open_at", self.reading())
                opens = True
        for name, value in sent.items():
            if not (opens and name in ("queueing", "sales_open")):  # open() sets those
                setattr(self, name, value)
        if "max_overtakes" in sent:
            for p in self.line:
                p.grandfathered = p.overtakes
        data = self.record("event.updated", None, **{API_NAMES[n]: v for n, v in sent.items()})
        promoted, offered = self.allocate("event.updated", None)
        data.update(promotedUserIds=promoted, offeredUserIds=offered)
        if opens:
            self.open()
        return {"promotedUserIds": promoted, "offeredUserIds": offered}

    # --- the rule ---
    def walk(self) -> list[tuple[Party, list[int]]]:
        """The allocation rule: the waiting parties the free tickets serve now, in the order
        served, each with the users it passed over. Takes them off the line, counts overtakes."""
        free, passed, served = self.available, [], []  # passed: skipped parties that count
        for party in list(self.line):
            if free == 0:
                break
            if party.tickets > self.total:  # could never be served: not counted, never blocks
                continue
            if party.tickets > free:
                if party.overtakes >= self.max_overtakes:
                    break  # it blocks: the free tickets wait for it
                passed.append(party)
                continue
            if any(p.overtakes >= self.max_overtakes for p in passed):
                break  # serving it would push that party past the bound: that one blocks
            for p in passed:
                p.overtakes += 1
            self.line.remove(party)
            free -= party.tickets
            served.append((party, [p.user for p in passed]))
        return served

    def allocate(self, cause: str, cause_user: int | None, newcomer: int | None = None,
                 from_queue: bool = False):  # fmt: skip
        """Run the walk and give each served party its tickets: (promoted, offered) users."""
        promoted, offered = [], []
        for party, overtook in self.walk():
            how = self.serve(party, overtook, cause, cause_user, newcomer, from_queue)
            if how == "promoted":
                promoted.append(party.user)
            elif how == "offered":
                offered.append(party.user)
        return promoted, offered

    def serve(self, party: Party, overtook: list[int], cause, cause_user, newcomer,
              from_queue=False) -> str:  # fmt: skip
        """A buyer present (the newcomer) books, or holds while paying when the event holds;
        a waiting party is booked in auto mode and offered in offer mode. The opening's
        parties are buyers present whose facts say `fromQueue`."""
        data = {"tickets": party.tickets, "overtookUserIds": overtook}
        if party.user == newcomer and from_queue:
            data["fromQueue"] = True
        if party.user == newcomer and self.hold_ttl:
            self.holds[party.user] = party.tickets
            self.start(party, self.hold_ttl)
            self.record("hold.created", party.user, **data)
            return "held"
        if party.user == newcomer:
            self.booked[party.user] = party.tickets
            self.record("booking.booked", party.user, **data)
            return "booked"
        data.update(cause=cause, causeUserId=cause_user)
        if self.mode == "offer":
            self.offered[party.user] = party.tickets
            self.start(party, self.offer_ttl)
            self.record("offer.created", party.user, **data)
            return "offered"
        self.booked[party.user] = party.tickets
        self.record("booking.promoted", party.user, **data)
        return "promoted"

    def start(self, party: Party, ttl: int) -> None:
        """The clock of a new offer or hold."""
        self.made += 1
        self.deadlines[party.user] = Deadline(self.now, self.now + ttl, party.seq, self.made)

    def end(self, user: int) -> int:
        """An offer or hold ends (claimed, declined, released or lapsed): its tickets."""
        self.deadlines.pop(user, None)
        self.lapsed.discard(user)
        return self.offered.pop(user) if user in self.offered else self.holds.pop(user)

    def taken(self, tickets: int | None, have: int) -> int:
        """How many of the user's `have` tickets a cancel or claim takes (default all)."""
        if tickets is not None and tickets > have:
            raise ModelRefusal("too-many-tickets", userTickets=have)
        return have if tickets is None else tickets

    def freed(self, status: str, fact: str, user: int, given: int, remaining: int) -> dict:
        data = self.record(fact, user, tickets=given, remainingTickets=remaining)
        data.update(went := outcome(*self.allocate(fact, user)))
        return {"status": status, "tickets": given, "remainingTickets": remaining, **went}

    def record(self, type_: str, user: int | None, **data) -> dict:
        self.journal.append((type_, user, data))
        return data  # filled in later with what the change's allocation did

    # --- invariants ---
    def violations(self) -> list[str]:
        """The invariants of issues 20 and 21 that fail in the current state (empty when all
        hold)."""
        found, free = [], self.available
        if not 0 <= free <= self.total:
            found.append(
                f"booked + offered + held + available = total: {self.held} taken of {self.total}"
            )
        users = [*self.booked, *self.offered, *self.holds, *(p.user for p in self.line),
                 *self.queue]  # fmt: skip
        counts = [*self.booked.values(), *self.offered.values(), *self.holds.values(),
                  *(p.tickets for p in self.line), *self.queue.values()]  # fmt: skip
        if len(users) != len(set(users)) or min(counts, default=1) < 1:
            found.append(f"one state per user, whole parties: {users}, {counts}")
        if self.queueing and (self.sales_open or self.sales_open_at is None):
            found.append(f"queueing, so sales closed until salesOpenAt: {self.status()}")
        if not self.queueing and self.queue:
            found.append(f"a queue only while queueing: {self.queue}")
        if self.settled and self.opening_due():
            found.append(f"no opening left due after a change: {self.sales_open_at} at {self.now}")
        out = {*self.offered, *self.holds}
        for user in sorted(out | set(self.deadlines)):
            clock = self.deadlines.get(user)
            if user not in out or clock is None or not clock.expires > clock.created:
                found.append(f"expiry after creation: user {user}, {clock}")
        if self.settled and (late := self.due()):
            found.append(f"nothing lapsed unsettled after a change: {late} at {self.now}")
        for i, party in enumerate(self.line):
            if party.overtakes > max(self.max_overtakes, party.grandfathered):
                found.append(f"bounded overtakes: {party.entry()} over {self.max_overtakes}")
            if party.tickets > free:
                continue
            blockers = [p for p in self.line[:i] if p.tickets > free
                        and p.overtakes >= self.max_overtakes]  # fmt: skip
            if not blockers:
                found.append(f"no idle fit: {party.entry()} fits {free} free, nobody blocks")
            elif all(p.tickets > self.total for p in blockers):
                found.append(f"no live-lock: {party.entry()} waits behind parties > the event")
        return found
