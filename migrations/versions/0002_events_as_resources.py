"""events as resources: sales can close; a user's bookings and places by user

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 08:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("sales_open", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_index("ix_bookings_user_event", "bookings", ["user_id", "event_id"])
    op.create_index("ix_waiting_list_entries_user_event", "waiting_list_entries", ["user_id", "event_id"])


def downgrade():
    op.drop_index("ix_waiting_list_entries_user_event", table_name="waiting_list_entries")
    op.drop_index("ix_bookings_user_event", table_name="bookings")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("sales_open")
