"""a scheduled on-sale: bookings queue until salesOpenAt, then are served in random order

Events get `sales_open_at` (NULL: no schedule, as before), `queueing` (bookings queue
for the opening now) and the queued parties and tickets; `queue_entries` holds the
queued parties. Nothing in it orders them: the opening shuffles them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 15:00:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade():
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("sales_open_at", TIMESTAMP, nullable=True))
        batch.add_column(
            sa.Column("queueing", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("queued_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("queued_tickets", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_index("ix_events_sales_open_at", "events", ["sales_open_at"], unique=False)
    op.create_table(
        "queue_entries",
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.CheckConstraint("tickets >= 1", name=op.f("ck_queue_entries_tickets_positive")),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_queue_entries_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "user_id", name=op.f("pk_queue_entries")),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index(
        "ix_queue_entries_user_event", "queue_entries", ["user_id", "event_id"], unique=False
    )


def downgrade():
    op.drop_index("ix_queue_entries_user_event", table_name="queue_entries")
    op.drop_table("queue_entries")
    op.drop_index("ix_events_sales_open_at", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("queued_tickets")
        batch.drop_column("queued_count")
        batch.drop_column("queueing")
        batch.drop_column("sales_open_at")
