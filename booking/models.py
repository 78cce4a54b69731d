"""Tables. The constraints here are the last guard of the booking invariants."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")
MYSQL_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("total_tickets >= 0", name="total_not_negative"),
        CheckConstraint(
            "available_tickets >= 0 AND available_tickets <= total_tickets",
            name="available_within_total",
        ),
        CheckConstraint("waiting_count >= 0", name="waiting_not_negative"),
        {"sqlite_autoincrement": True, **MYSQL_OPTIONS},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    total_tickets: Mapped[int] = mapped_column(Integer)
    available_tickets: Mapped[int] = mapped_column(Integer)
    # Kept in step with the waiting_list_entries rows so status never counts rows.
    waiting_count: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped on every waiting-list change; a process compares it with the
    # version its in-memory copy was loaded at.
    waitlist_version: Mapped[int] = mapped_column(BigInteger, default=0)
    # Next place in line; decided inside the transaction, never by clocks.
    next_waiting_seq: Mapped[int] = mapped_column(BigInteger, default=1)
    # Closed: nobody new books or joins the line; cancellations still pass tickets on.
    sales_open: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class Booking(db.Model):
    __tablename__ = "bookings"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        # A user's own bookings, in event order, without a scan.
        Index("ix_bookings_user_event", "user_id", "event_id"),
        MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class WaitingListEntry(db.Model):
    __tablename__ = "waiting_list_entries"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        # Also the index that finds the head of the line without a scan.
        UniqueConstraint("event_id", "seq"),
        Index("ix_waiting_list_entries_user_event", "user_id", "event_id"),
        MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


events = Event.__table__
bookings = Booking.__table__
waiting = WaitingListEntry.__table__


class IdempotencyRecord(db.Model):
    """A keyed request's answer, written in the same transaction as its change."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        # The key first: a batch looks its keys up with one IN list.
        UniqueConstraint("idem_key", "scope"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
        MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # Keys are visible ASCII and compared byte for byte (a case-insensitive
    # collation would make "abc" replay "ABC").
    idem_key: Mapped[str] = mapped_column(
        String(255, collation="ascii_bin").with_variant(String(255), "sqlite")
    )
    scope: Mapped[str] = mapped_column(String(300))  # method, path, and the admin user
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the request body
    status: Mapped[int] = mapped_column(Integer)
    headers: Mapped[str] = mapped_column(Text)  # JSON object
    body: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


idempotency_keys = IdempotencyRecord.__table__
