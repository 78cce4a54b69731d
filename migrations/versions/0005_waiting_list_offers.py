"""waiting-list offers: a freed ticket held for the head of the line until it lapses

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:15:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade():
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("waitlist_mode", sa.String(8), nullable=False, server_default="auto")
        )
        batch.add_column(
            sa.Column("offer_ttl_seconds", sa.Integer(), nullable=False, server_default="3600")
        )
        batch.add_column(
            sa.Column("offered_tickets", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "offers",
        sa.Column("id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_offers_event_id_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
        sa.UniqueConstraint("event_id", "user_id", name=op.f("uq_offers_event_id")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_index("ix_offers_expires_at", "offers", ["expires_at"])
    op.create_index("ix_offers_event_expires_at", "offers", ["event_id", "expires_at"])
    op.create_index("ix_offers_user_event", "offers", ["user_id", "event_id"])
    # "Did this user's offer lapse?" is asked of the journal by event and user.
    op.create_index("ix_journal_entries_event_user", "journal_entries", ["event_id", "user_id"])


def downgrade():
    op.drop_index("ix_journal_entries_event_user", table_name="journal_entries")
    op.drop_table("offers")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("offered_tickets")
        batch.drop_column("offer_ttl_seconds")
        batch.drop_column("waitlist_mode")
