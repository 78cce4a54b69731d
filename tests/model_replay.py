"""The reference model (model.py) run one change at a time in commit order, as the journal
tells the changes, and its journal compared with the service's.

The journal holds every committed change's own fact (a booking, a hold, a cancel, a claim,
a release, a lapse, an admin's change, a party queued or leaving the queue) followed by the
facts of the parties its allocation served. The replay has no clock: offers and holds
lapse when the journal says so, each group of lapses settled together given to the model
in the journal's order. A scheduled on-sale opens where the journal has sale.opened: the
parties that follow it with `fromQueue` are the opening's random order, given to the
model's opening, which must then write exactly those facts (each party served as a booking
would be at that moment). Whether a salesOpenAt was ahead of the database's clock is what
its fact says (`queueing`: true), and PATCH salesOpen: true stores the time its fact
says. `model_violations` feeds the changes to a model of each event and requires the model
to write exactly the same facts: so the parties served, their order, the overtakes they
counted and every answer's lists are those of the rule, whatever the concurrency was.
"""

from .model import EventModel, ModelRefusal

EXPIRED = ("offer.expired", "hold.expired")  # lapses settled together, then one allocation
CHANGE_TYPES = {
    "booking.booked",
    "hold.created",
    "hold.claimed",
    "hold.released",
    *EXPIRED,
    "waitlist.joined",
    "booking.cancelled",
    "waitlist.left",
    "waitlist.reduced",
    "offer.declined",
    "offer.claimed",
    "event.updated",
    "queue.joined",
    "queue.left",
    "queue.reduced",
    "sale.opened",  # the opening at the start of a change (or the worker's empty change)
}
SETTINGS = {  # event.updated's keys as EventModel.change's arguments
    "totalTickets": "total",
    "maxOvertakes": "max_overtakes",
    "maxTicketsPerBooking": "max_tickets_per_booking",
    "waitlistMode": "mode",
    "salesOpen": "sales_open",
    "holdTtlSeconds": "hold_ttl",
    "offerTtlSeconds": "offer_ttl",
    "salesOpenAt": "sales_open_at",
}
UNTIMED = ("expiresAt",)  # times: the replay's model keeps its clock at 0
OUTCOME = ("promotedUserIds", "offeredUserIds")


class ReplayedModel(EventModel):
    """The model without a clock: a salesOpenAt is ahead when the fact being replayed says
    the event queues from then on; the opening comes only where the journal has it; the
    clock's reading is the time the fact says was stored."""

    scheduling = False  # the fact being replayed scheduled the on-sale
    told_reading = None  # the salesOpenAt the fact being replayed stored

    def ahead(self, at) -> bool:
        return self.scheduling

    def opening_due(self) -> bool:
        return False

    def reading(self):
        return self.told_reading


def model_violations(entries: dict[int, list[tuple]]) -> list[str]:
    """entries: {event_id: [(type, user_id, data), ...] in commit order}."""
    found = []
    for event_id, facts in entries.items():
        found += [f"event {event_id}: {problem}" for problem in _replay(facts)]
    return found


def _replay(facts: list[tuple]) -> list[str]:
    if not facts or facts[0][0] != "event.created":
        return ["the journal does not start with event.created"]
    created = facts[0][2]
    queueing = bool(created.get("queueing", False))
    model = ReplayedModel(
        created["totalTickets"],
        created.get("waitlistMode", "auto"),
        created.get("maxTicketsPerBooking", 10),
        created.get("maxOvertakes", 3),
        sales_open=not queueing,
        hold_ttl=created.get("holdTtlSeconds", 0),
        offer_ttl=created.get("offerTtlSeconds", 3600),
        sales_open_at=created.get("salesOpenAt"),
        queueing=queueing,
    )
    told = [(type_, user, _untimed(data)) for type_, user, data in facts[1:]]
    index = 0
    while index < len(told):
        type_, user, data = told[index]
        if type_ not in CHANGE_TYPES or data.get("fromQueue"):
            return [f"fact {index + 1} ({type_}, user {user}) follows no change of its own"]
        before = len(model.journal)
        try:
            if type_ in EXPIRED:
                model.lapse(_lapse_group(told, index))
            elif type_ == "sale.opened":
                if not model.queueing:
                    return [f"fact {index + 1} (sale.opened): the event was not queueing"]
                model.open(_opening_order(told, index))
            else:
                _run(model, type_, user, data, told, index)
        except ModelRefusal as refusal:
            return [f"fact {index + 1} ({type_}, user {user}): the model refuses: {refusal}"]
        except ValueError as error:  # an opening's order that is not the queued parties
            return [f"fact {index + 1} ({type_}, user {user}): {error}"]
        written = model.journal[before:]
        if told[index : index + len(written)] != written:
            return [
                f"facts {index + 1}..: the service wrote {told[index : index + len(written)]},"
                f" the model {written}"
            ]
        index += max(1, len(written))
    return []


def _run(model: ReplayedModel, type_: str, user: int, data: dict, told, index: int) -> None:
    tickets = data.get("tickets")
    if type_ in ("booking.booked", "hold.created", "waitlist.joined", "queue.joined"):
        model.book(user, tickets)
    elif type_ in ("booking.cancelled", "waitlist.left", "waitlist.reduced", "queue.left",
                   "queue.reduced"):  # fmt: skip
        model.cancel(user, tickets)
    elif type_ in ("offer.declined", "hold.released"):
        model.cancel(user)
    elif type_ in ("offer.claimed", "hold.claimed"):
        model.claim(user, tickets)
    elif type_ == "event.updated":
        change = {SETTINGS[key]: value for key, value in data.items() if key in SETTINGS}
        model.scheduling, model.told_reading = data.get("queueing") is True, None
        if data.get("queueing") is True:
            change.pop("sales_open", None)  # the schedule closes sales: not sent
        elif data.get("queueing") is False:
            # An opening: salesOpen true or a salesOpenAt passed; either stores this time.
            model.told_reading = change.pop("sales_open_at", None)
            model.next_order = _opening_order(told, index + 1)
        # A new name: nothing the model keeps, but the fact says it.
        kept = {k: v for k, v in data.items() if k == "eventName"}
        if change:
            before = len(model.journal)
            model.change(**change)
            model.journal[before][2].update(kept)
        else:
            model.record(type_, None, **kept, promotedUserIds=[], offeredUserIds=[])
        model.scheduling = False


def _opening_order(told: list[tuple], index: int) -> list[int] | None:
    """The random order of the opening at or after told[index] (its sale.opened and then
    its queued parties' facts, `fromQueue`); None when there is none."""
    start = next((i for i in range(index, len(told)) if told[i][0] == "sale.opened"), None)
    if start is None:
        return None
    parties = told[start][2].get("queuedParties", 0)
    served = [user for _, user, data in told[start + 1 :] if data.get("fromQueue")]
    return served[:parties]


def _lapse_group(told: list[tuple], index: int) -> list[int]:
    """The users of the offers and holds that lapsed together, from told[index] on: the
    expired facts that follow one another with the same outcome (each carries its group's
    allocation). Two groups side by side (a refused change or the worker's sweep writes no
    fact of its own) differ in outcome unless neither served anyone, and then lapsing them
    as one frees the same tickets and serves nobody either."""
    first, end = told[index][2], index
    while end < len(told) and told[end][0] in EXPIRED:
        if any(told[end][2].get(key) != first.get(key) for key in OUTCOME):
            break
        end += 1
    return [user for _, user, _ in told[index:end]]


def _untimed(data: dict) -> dict:
    return {key: value for key, value in data.items() if key not in UNTIMED}
