"""A reference model of the booking rules of issue 20: parties and a waiting list fair to them.

Plain Python, no server and no database, written from the issue alone. The tests run it one
change at a time in commit order and compare its answers, its tables and its journal with the
service's. One event per model. Every change first settles the offers whose time has passed
(`time_passes` marks them), as the service does under the event's lock.

Choices where the issue is silent (the service should match them, or we change them here):
- Answers are the response bodies without `eventId` and `userId` (the tests add those).
- Refusals: `ModelRefusal(problem, status, **extra)`, `problem` being the part after
  `urn:booking:problem:`. Book refuses in this order: sales-closed, already-booked,
  already-offered, already-waiting (`position`), too-many-tickets (`maxTicketsPerBooking`,
  `totalTickets`). Cancel and claim asking for more than the user has (or declining an
  offer with other than its tickets): too-many-tickets with `userTickets`. `tickets`
  outside 1..1,000 is 400 `about:blank`, checked before anything else (nothing settles).
  A refused change still settles the lapsed offers first (as today).
- Every cancel answer carries `promotedUserIds`, `offeredUserIds`, `promotedUserId` and
  `offeredUserId` (see `outcome`), leaving the line too: a blocker that leaves lets the
  parties behind it be served. A shrunk party's answer has `position` after the
  allocation, or None if that allocation served it.
- Only a book's newcomer is booked at once in offer mode; a party that shrinks and now fits
  is offered, like any waiting party.
- Journal data (`record`): booking.booked {tickets, overtookUserIds}; waitlist.joined
  {tickets, position}; booking.promoted and offer.created {tickets, overtookUserIds, cause,
  causeUserId} (cause: the type of the fact that ran the allocation; offer.created's
  expiresAt is not modelled); booking.cancelled, waitlist.left, waitlist.reduced and
  offer.declined {tickets, remainingTickets, +outcome}; offer.claimed {tickets,
  releasedTickets, +outcome}; offer.expired {tickets, +outcome}; event.updated {the fields
  sent, by API name, promotedUserIds, offeredUserIds}. `overtookUserIds` are the waiting
  parties counted one more overtake, in line order (a party larger than the event is never
  counted, so never listed). The served parties' facts follow the fact that caused them.
- Offers that lapse together: one offer.expired each, in the order they lapsed (soonest
  first; the service breaks ties by line order), then one allocation
  whose cause is offer.expired with causeUserId the user (None when several lapsed); each
  offer.expired carries that allocation's outcome.
- Every accepted PATCH runs the allocation (a no-op when nothing that matters changed).
  Lowering maxOvertakes below a party's count keeps its count: it blocks until served.
- The event.created fact is the test's to record (it knows the event's name and TTL).
"""

from dataclasses import dataclass, field

LIMIT = 1_000  # the API's bound on tickets, maxTicketsPerBooking and maxOvertakes
API_NAMES = {  # change()'s arguments as PATCH and event.updated name them
    "total": "totalTickets",
    "max_overtakes": "maxOvertakes",
    "max_tickets_per_booking": "maxTicketsPerBooking",
    "mode": "waitlistMode",
    "sales_open": "salesOpen",
}
BOUNDS = {"total": (0, 10**6), "max_overtakes": (0, LIMIT), "max_tickets_per_booking": (1, LIMIT)}


class ModelRefusal(Exception):
    """A refused request: nothing changed (but lapsed offers settled)."""

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

    def entry(self) -> dict:
        return {"userId": self.user, "tickets": self.tickets, "overtakes": self.overtakes}


@dataclass
class EventModel:
    total: int
    mode: str = "auto"
    max_tickets_per_booking: int = 10
    max_overtakes: int = 3
    sales_open: bool = True
    booked: dict[int, int] = field(default_factory=dict)  # user -> tickets
    offered: dict[int, int] = field(default_factory=dict)  # user -> tickets, in offer order
    line: list[Party] = field(default_factory=list)  # waiting parties in line order
    lapsed: set[int] = field(default_factory=set)  # offers past their time, not yet settled
    journal: list[tuple] = field(default_factory=list)  # (type, userId, data), commit order

    # --- reads ---
    @property
    def held(self) -> int:
        return sum(self.booked.values()) + sum(self.offered.values())

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

    def status(self) -> dict:
        """The party fields of the event object."""
        return {
            "totalTickets": self.total,
            "availableTickets": self.available,
            "offeredTickets": sum(self.offered.values()),
            "waitingListCount": len(self.line),
            "waitingTickets": sum(p.tickets for p in self.line),
            "maxTicketsPerBooking": self.max_tickets_per_booking,
            "maxOvertakes": self.max_overtakes,
            "waitlistMode": self.mode,
            "salesOpen": self.sales_open,
        }

    def user_state(self, user: int) -> dict:
        if user in self.booked:
            return {"status": "booked", "tickets": self.booked[user]}
        if user in self.offered:
            return {"status": "offered", "tickets": self.offered[user]}
        if party := self.party(user):
            position = self.position(user)
            return {"status": "waitlisted", "tickets": party.tickets, "position": position,
                    "overtakes": party.overtakes}  # fmt: skip
        return {"status": "none"}

    # --- changes ---
    def book(self, user: int, tickets: int = 1) -> dict:
        checked(tickets)
        self.settle()
        if not self.sales_open:
            raise ModelRefusal("sales-closed")
        if user in self.booked:
            raise ModelRefusal("already-booked")
        if user in self.offered:
            raise ModelRefusal("already-offered")
        if position := self.position(user):
            raise ModelRefusal("already-waiting", position=position)
        if tickets > self.max_tickets_per_booking:
            most = self.max_tickets_per_booking
            raise ModelRefusal(
                "too-many-tickets", maxTicketsPerBooking=most, totalTickets=self.total
            )
        return self.arrive(user, tickets)

    def arrive(self, user: int, tickets: int) -> dict:
        """Serve one party that passed the refusals: it joins the back and the allocation decides.
        (Issue 22's opening will call this for each queued party, in the shuffled order.)"""
        self.line.append(Party(user, tickets))
        self.allocate("booking.booked", user, newcomer=user)
        if user in self.booked:
            return {"status": "booked", "tickets": tickets}
        position = self.position(user)
        self.record("waitlist.joined", user, tickets=tickets, position=position)
        return {"status": "waitlisted", "position": position, "tickets": tickets}

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
        if user in self.offered:
            if tickets not in (None, self.offered[user]):  # an offer is declined whole
                raise ModelRefusal("too-many-tickets", userTickets=self.offered[user])
            return self.freed("declined_offer", "offer.declined", user, self.offered.pop(user), 0)
        party = self.party(user)
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
        if tickets is not None:
            checked(tickets)
        self.settle()
        if user not in self.offered:
            raise ModelRefusal("no-offer")
        claimed = self.taken(tickets, self.offered[user])
        released = self.offered.pop(user) - claimed
        self.booked[user] = claimed
        data = self.record("offer.claimed", user, tickets=claimed, releasedTickets=released)
        data.update(went := outcome(*self.allocate("offer.claimed", user)))
        return {"status": "booked", "tickets": claimed, "releasedTickets": released,
                "promotedUserIds": went["promotedUserIds"],
                "offeredUserIds": went["offeredUserIds"]}  # fmt: skip

    def time_passes(self, users=None) -> None:
        """These offers (default all) reach their expiry; the next change settles them."""
        self.lapsed |= set(self.offered if users is None else users) & set(self.offered)

    def settle(self) -> dict:
        """What every change does first: the offers past their time lapse, together."""
        users, self.lapsed = self.lapsed, set()
        # The soonest lapsed first: offers made earlier lapse earlier (one offer time).
        return self.lapse([u for u in self.offered if u in users])

    def lapse(self, users) -> dict:
        """Offers that lapse together are freed together, then the allocation runs once.
        `users` in the order they lapsed (the service's: soonest first, then line order)."""
        users = [u for u in users if u in self.offered]
        if not users:
            return outcome([], [])
        facts = [self.record("offer.expired", u, tickets=self.offered.pop(u)) for u in users]
        went = outcome(*self.allocate("offer.expired", users[0] if len(users) == 1 else None))
        for data in facts:
            data.update(went)
        return went

    def change(self, total=None, max_overtakes=None, max_tickets_per_booking=None, mode=None,
               sales_open=None) -> dict:  # fmt: skip
        """PATCH: apply what was sent (None: not sent), then run the allocation."""
        sent = {n: v for n, v in dict(locals()).items() if n in API_NAMES and v is not None}
        if not sent or mode not in (None, "auto", "offer"):
            raise ModelRefusal("about:blank", status=400)
        for name, (low, high) in BOUNDS.items():
            if name in sent:
                checked(sent[name], low, high)
        self.settle()
        if "total" in sent and sent["total"] < self.held:
            raise ModelRefusal("capacity-below-held", held=self.held)
        for name, value in sent.items():
            setattr(self, name, value)
        if "max_overtakes" in sent:
            for p in self.line:
                p.grandfathered = p.overtakes
        data = self.record("event.updated", None, **{API_NAMES[n]: v for n, v in sent.items()})
        promoted, offered = self.allocate("event.updated", None)
        data.update(promotedUserIds=promoted, offeredUserIds=offered)
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

    def allocate(self, cause: str, cause_user: int | None, newcomer: int | None = None):
        """Run the walk and give each served party its tickets: (promoted, offered) users."""
        promoted, offered = [], []
        for party, overtook in self.walk():
            how = self.serve(party, overtook, cause, cause_user, newcomer)
            if how == "promoted":
                promoted.append(party.user)
            elif how == "offered":
                offered.append(party.user)
        return promoted, offered

    def serve(self, party: Party, overtook: list[int], cause, cause_user, newcomer) -> str:
        """A buyer present (the newcomer) books; a waiting party is booked in auto mode and
        offered in offer mode. (Issue 21's checkout holds decide here too.)"""
        data = {"tickets": party.tickets, "overtookUserIds": overtook}
        if party.user == newcomer:
            self.booked[party.user] = party.tickets
            self.record("booking.booked", party.user, **data)
            return "booked"
        data.update(cause=cause, causeUserId=cause_user)
        if self.mode == "offer":
            self.offered[party.user] = party.tickets
            self.record("offer.created", party.user, **data)
            return "offered"
        self.booked[party.user] = party.tickets
        self.record("booking.promoted", party.user, **data)
        return "promoted"

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
        """The invariants of issue 20 that fail in the current state (empty when all hold)."""
        found, free = [], self.available
        if not 0 <= free <= self.total:
            found.append(f"booked + offered + available = total: {self.held} held of {self.total}")
        users = [*self.booked, *self.offered, *(p.user for p in self.line)]
        counts = [*self.booked.values(), *self.offered.values(), *(p.tickets for p in self.line)]
        if len(users) != len(set(users)) or min(counts, default=1) < 1:
            found.append(f"whole parties: a user is split or empty: {users}, {counts}")
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
