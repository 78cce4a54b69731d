"""Tables. The constraints here are the last guard of the booking invariants.

Plain SQLAlchemy (no Flask): the app hands `metadata` to Flask-SQLAlchemy, whose
Flask-Migrate commands and migrations read it from there.
"""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    true,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints, so that Alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Model(DeclarativeBase):
    metadata = metadata


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")
MYSQL_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
# Millisecond-or-better timestamps from the database's clock (the one clock every
# host shares); the MySQL session runs in UTC (database.py).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class Event(Model):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("total_tickets >= 0", name="total_not_negative"),
        CheckConstraint(
            "available_tickets >= 0 AND available_tickets <= total_tickets",
            name="available_within_total",
        ),
        CheckConstraint("waiting_count >= 0", name="waiting_not_negative"),
        # The worker's look for openings that are due (storage/queue.py).
        Index("ix_events_sales_open_at", "sales_open_at"),
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
    # "auto": a freed ticket is booked for the head of the line; "offer": it is held
    # for them for offer_ttl_seconds (sales/rules.py).
    waitlist_mode: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    offer_ttl_seconds: Mapped[int] = mapped_column(Integer, default=3600, server_default="3600")
    # Tickets of live offers: booked + offered + available = total.
    offered_tickets: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Parties (sales/allocation.py): the most tickets one booking may ask for, how often
    # a waiting party may be passed over, the waiting parties' tickets, and the free
    # tickets that wait for a blocking party (the head of a line that may not be passed).
    max_tickets_per_booking: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    max_overtakes: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    waiting_tickets: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    held_back_tickets: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Checkout holds: a buyer's tickets held this long before they lapse (0: book at
    # once), and the tickets held now. booked + offered + held + available = total.
    hold_ttl_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    held_tickets: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A scheduled on-sale (sales/opening.py): when sales open (UTC; NULL: no schedule),
    # whether bookings queue for that opening now, and the queued parties and tickets.
    sales_open_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    queueing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    queued_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    queued_tickets: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class Booking(Model):
    __tablename__ = "bookings"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        CheckConstraint("tickets >= 1", name="tickets_positive"),
        # A user's own bookings, in event order, without a scan.
        Index("ix_bookings_user_event", "user_id", "event_id"),
        MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    tickets: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class WaitingListEntry(Model):
    __tablename__ = "waiting_list_entries"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        # Also the index that finds the head of the line without a scan.
        UniqueConstraint("event_id", "seq"),
        Index("ix_waiting_list_entries_user_event", "user_id", "event_id"),
        CheckConstraint("tickets >= 1", name="tickets_positive"),
        MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    tickets: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Times a party behind this one was served while this one waited (not while it was
    # larger than the whole event); at the event's max_overtakes it may not be passed.
    overtakes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class WaitingListChange(Model):
    """What one batch did to an event's line (sales/waiting_lists.py): another process
    replays the changes its copy missed instead of reading the whole line again. Only
    the last few hundred per event are kept."""

    __tablename__ = "waiting_list_changes"
    __table_args__ = (MYSQL_OPTIONS,)

    event_id: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the line's, after
    ops: Mapped[str] = mapped_column(Text)  # JSON list of [op, ...]


events = Event.__table__
bookings = Booking.__table__
waiting = WaitingListEntry.__table__
line_changes = WaitingListChange.__table__


class IdempotencyRecord(Model):
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


class JournalEntry(Model):
    """One committed fact, written in the same transaction as the change (an outbox).

    `id` is given at insert; in row mode batches of different events commit in
    parallel, so ids may commit out of order. `entry_id` is given after the
    commit by the sequencer (journal.py), one at a time, so readers that follow
    entry_id never skip an entry that commits late.
    """

    __tablename__ = "journal_entries"
    __table_args__ = (
        UniqueConstraint("entry_id"),
        # An event's history in commit order.
        Index("ix_journal_entries_event_entry", "event_id", "entry_id"),
        Index("ix_journal_entries_at", "at"),
        Index("ix_journal_entries_event_user", "event_id", "user_id"),
        {"sqlite_autoincrement": True, **MYSQL_OPTIONS},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    type: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    at: Mapped[datetime] = mapped_column(Timestamp)
    data: Mapped[str] = mapped_column(Text)  # JSON object


class JournalSequence(Model):
    """One row: the last entry_id given out. Sequencers lock it, writers never touch it."""

    __tablename__ = "journal_sequence"
    __table_args__ = (MYSQL_OPTIONS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_entry_id: Mapped[int] = mapped_column(BigInteger, default=0)


class Webhook(Model):
    __tablename__ = "webhooks"
    # AUTOINCREMENT: SQLite would give a deleted webhook's id to the next one.
    __table_args__ = ({"sqlite_autoincrement": True, **MYSQL_OPTIONS},)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[str] = mapped_column(Text)  # JSON list, or ["*"]
    event_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    # Delivered up to here (every wanted entry_id <= it was acknowledged).
    delivered_up_to: Mapped[int] = mapped_column(BigInteger, default=0)
    # The entry being retried: how many attempts failed, since when, and when next.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # One worker at a time delivers for a webhook; the lease lapses if it dies.
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class WebhookDelivery(Model):
    """One attempt to deliver one entry to one webhook."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
        {"sqlite_autoincrement": True, **MYSQL_OPTIONS},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(BigInteger)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(Timestamp)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)  # 1 KiB at most


class Offer(Model):
    """Tickets held for a user until expires_at (the database's clock): an offer, to a
    party the allocation served from the line, or a checkout hold, to a buyer who booked
    while the event holds bookings for payment. Only live ones are rows; their end is in
    the journal."""

    __tablename__ = "offers"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        Index("ix_offers_expires_at", "expires_at"),
        Index("ix_offers_event_expires_at", "event_id", "expires_at"),
        Index("ix_offers_user_event", "user_id", "event_id"),
        CheckConstraint("tickets >= 1", name="tickets_positive"),
        MYSQL_OPTIONS,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)  # their place in line when offered
    tickets: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    kind: Mapped[str] = mapped_column(String(8), default="offer", server_default="offer")
    expires_at: Mapped[datetime] = mapped_column(Timestamp)


class QueueEntry(Model):
    """A party queued for a scheduled on-sale, until the opening serves it in a random
    order: no place, no arrival time, nothing that could order it."""

    __tablename__ = "queue_entries"
    __table_args__ = (
        Index("ix_queue_entries_user_event", "user_id", "event_id"),
        CheckConstraint("tickets >= 1", name="tickets_positive"),
        MYSQL_OPTIONS,
    )

    event_id: Mapped[int] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tickets: Mapped[int] = mapped_column(Integer)


journal = JournalEntry.__table__
offers = Offer.__table__
queue = QueueEntry.__table__
journal_sequence = JournalSequence.__table__
webhooks = Webhook.__table__
deliveries = WebhookDelivery.__table__
