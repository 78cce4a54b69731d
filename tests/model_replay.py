"""The reference model (model.py) run one change at a time in commit order, as the journal
tells the changes, and its journal compared with the service's.

The journal holds every committed change's own fact (a booking, a cancel, a claim, a
lapse, an admin's change) followed by the facts of the parties its allocation served.
`model_violations` feeds the changes to a model of each event and requires the model to
write exactly the same facts: so the parties served, their order, the overtakes they
counted and every answer's lists are those of the rule, whatever the concurrency was.
"""

from .model import EventModel, ModelRefusal

CHANGE_TYPES = {
    "booking.booked",
    "waitlist.joined",
    "booking.cancelled",
    "waitlist.left",
    "waitlist.reduced",
    "offer.declined",
    "offer.claimed",
    "offer.expired",
    "event.updated",
}
SETTINGS = {  # event.updated's keys as EventModel.change's arguments
    "totalTickets": "total",
    "maxOvertakes": "max_overtakes",
    "maxTicketsPerBooking": "max_tickets_per_booking",
    "waitlistMode": "mode",
    "salesOpen": "sales_open",
}
UNTIMED = ("expiresAt",)  # the model keeps no clock


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
    model = EventModel(
        created["totalTickets"],
        created.get("waitlistMode", "auto"),
        created.get("maxTicketsPerBooking", 10),
        created.get("maxOvertakes", 3),
    )
    told = [(type_, user, _untimed(data)) for type_, user, data in facts[1:]]
    index = 0
    while index < len(told):
        type_, user, data = told[index]
        if type_ not in CHANGE_TYPES:
            return [f"fact {index + 1} ({type_}, user {user}) follows no change of its own"]
        before = len(model.journal)
        if type_ == "offer.expired":
            group = [user]
            while index + len(group) < len(told) and told[index + len(group)][0] == type_:
                group.append(told[index + len(group)][1])
            model.lapse(group)
        else:
            try:
                _run(model, type_, user, data)
            except ModelRefusal as refusal:
                return [f"fact {index + 1} ({type_}, user {user}): the model refuses: {refusal}"]
        written = model.journal[before:]
        if told[index : index + len(written)] != written:
            return [
                f"facts {index + 1}..: the service wrote {told[index : index + len(written)]},"
                f" the model {written}"
            ]
        index += max(1, len(written))
    return []


def _run(model: EventModel, type_: str, user: int, data: dict) -> None:
    tickets = data.get("tickets")
    if type_ in ("booking.booked", "waitlist.joined"):
        model.book(user, tickets)
    elif type_ in ("booking.cancelled", "waitlist.left", "waitlist.reduced"):
        model.cancel(user, tickets)
    elif type_ == "offer.declined":
        model.cancel(user)
    elif type_ == "offer.claimed":
        model.claim(user, tickets)
    elif type_ == "event.updated":
        change = {SETTINGS[key]: value for key, value in data.items() if key in SETTINGS}
        # A new name or offer time: nothing the model keeps, but the fact says it.
        kept = {k: v for k, v in data.items() if k in ("eventName", "offerTtlSeconds")}
        if change:
            before = len(model.journal)
            model.change(**change)
            model.journal[before][2].update(kept)
        else:
            model.record(type_, None, **kept, promotedUserIds=[], offeredUserIds=[])


def _untimed(data: dict) -> dict:
    return {key: value for key, value in data.items() if key not in UNTIMED}
