"""checkout holds: tickets held for a buyer while they pay, lapsing by themselves

A hold is an offer given to a buyer who is present rather than to someone who waited:
the same table, told apart by `kind` ("offer" for every existing row, or "hold").
Events get `hold_ttl_seconds` (0: book at once, as before) and `held_tickets`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 14:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("offers") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="offer"))
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("hold_ttl_seconds", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("held_tickets", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("events") as batch:
        batch.drop_column("held_tickets")
        batch.drop_column("hold_ttl_seconds")
    with op.batch_alter_table("offers") as batch:
        batch.drop_column("kind")
