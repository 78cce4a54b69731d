"""A batch's view of one event's live offers and checkout holds (tickets held for a user
until they lapse): read once (its users' and the lapsed ones, never every one), changed
in memory, written once.

An offer is given to a waiting party the allocation served (offer mode); a hold to a
buyer who booked while the event holds bookings for payment (holdTtlSeconds). Both are
claimed, given back or lapse the same way; only their names differ.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from ..storage import offers as offer_store

OFFER, HOLD = "offer", "hold"


@dataclass(frozen=True, slots=True)
class Offer:
    user_id: int
    seq: int  # the party's place in line when served: ties between lapses go by it
    tickets: int
    expires_at: datetime
    kind: str = OFFER


class Offers:
    __slots__ = ("_ended", "_lapsed", "_live", "_new", "_now")

    def __init__(self, live: dict[int, Offer], now: Callable[[], datetime]):
        self._live = live
        self._now = now
        self._new: dict[int, Offer] = {}
        self._ended: list[int] = []  # users whose committed offer or hold ended
        self._lapsed: dict[int, Offer] = {}  # those this batch found lapsed

    @classmethod
    def read(cls, conn: Connection, event, users: list[int], now) -> "Offers":
        live = {}
        if event.offered_tickets or event.held_tickets:
            for user_id, seq, tickets, expires_at, kind in offer_store.for_batch(
                conn, event.id, users, now()
            ):
                live[user_id] = Offer(user_id, seq, tickets, expires_at, kind)
        return cls(live, now)

    def of(self, user_id: int) -> Offer | None:
        return self._live.get(user_id)

    def lapsed(self) -> list[Offer]:
        """Offers and holds past their time, soonest lapsed first, then line order."""
        if not self._live:
            return []
        now = self._now()
        due = [offer for offer in self._live.values() if offer.expires_at <= now]
        return sorted(due, key=lambda offer: (offer.expires_at, offer.seq))

    def add(self, user_id: int, seq: int, tickets: int, ttl_seconds: int, kind: str) -> Offer:
        expires_at = self._now() + timedelta(seconds=ttl_seconds)
        offer = Offer(user_id, seq, tickets, expires_at, kind)
        self._live[user_id] = self._new[user_id] = offer
        return offer

    def end(self, user_id: int, lapsed: bool) -> Offer:
        offer = self._live.pop(user_id)
        if self._new.pop(user_id, None) is None:
            self._ended.append(user_id)
        if lapsed:
            self._lapsed[user_id] = offer
        return offer

    def lapsed_at(
        self, conn: Connection, event_id: int, user_id: int
    ) -> tuple[str, datetime] | None:
        """(kind, when) the user's last offer or hold lapsed, if that is how it ended."""
        if (offer := self._lapsed.get(user_id)) is not None:
            return offer.kind, offer.expires_at
        return offer_store.lapsed_at(conn, event_id, user_id)

    def write(self, conn: Connection, event_id: int) -> None:
        if not (self._ended or self._new):
            return
        new = [
            {
                "event_id": event_id,
                "user_id": offer.user_id,
                "seq": offer.seq,
                "tickets": offer.tickets,
                "kind": offer.kind,
                "expires_at": offer.expires_at,
            }
            for offer in self._new.values()
        ]
        offer_store.write(conn, {event_id: self._ended} if self._ended else {}, new)
