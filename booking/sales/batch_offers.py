"""A batch's view of one event's live offers: read once (its users' and the lapsed
ones, never every offer), changed in memory, written once."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from ..storage import offers as offer_store
from .waiting_lists import Party


@dataclass(frozen=True, slots=True)
class Offer:
    user_id: int
    seq: int  # the party's place in line when offered
    tickets: int
    expires_at: datetime


class Offers:
    __slots__ = ("_ended", "_lapsed", "_live", "_new", "_now")

    def __init__(self, live: dict[int, Offer], now: Callable[[], datetime]):
        self._live = live
        self._now = now
        self._new: dict[int, Offer] = {}
        self._ended: list[int] = []  # users whose committed offer ended
        self._lapsed: dict[int, datetime] = {}  # users whose offer this batch found lapsed

    @classmethod
    def read(cls, conn: Connection, event, users: list[int], now) -> "Offers":
        live = {}
        if event.offered_tickets:
            for user_id, seq, tickets, expires_at in offer_store.for_batch(
                conn, event.id, users, now()
            ):
                live[user_id] = Offer(user_id, seq, tickets, expires_at)
        return cls(live, now)

    def of(self, user_id: int) -> Offer | None:
        return self._live.get(user_id)

    def lapsed(self) -> list[Offer]:
        """Offers past their time, soonest lapsed first, then line order."""
        if not self._live:
            return []
        now = self._now()
        due = [offer for offer in self._live.values() if offer.expires_at <= now]
        return sorted(due, key=lambda offer: (offer.expires_at, offer.seq))

    def add(self, party: Party, now: datetime, ttl_seconds: int) -> datetime:
        offer = Offer(party.user_id, party.seq, party.tickets, now + timedelta(seconds=ttl_seconds))
        self._live[party.user_id] = self._new[party.user_id] = offer
        return offer.expires_at

    def end(self, user_id: int, lapsed: bool) -> Offer:
        offer = self._live.pop(user_id)
        if self._new.pop(user_id, None) is None:
            self._ended.append(user_id)
        if lapsed:
            self._lapsed[user_id] = offer.expires_at
        return offer

    def lapsed_at(self, conn: Connection, event_id: int, user_id: int) -> datetime | None:
        """When the user's last offer lapsed, if that is how it ended (for a refusal)."""
        if user_id in self._lapsed:
            return self._lapsed[user_id]
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
                "expires_at": offer.expires_at,
            }
            for offer in self._new.values()
        ]
        offer_store.write(conn, {event_id: self._ended} if self._ended else {}, new)
