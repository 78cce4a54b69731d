"""webhook ids are never reused on SQLite: the table gets AUTOINCREMENT

Without it SQLite gives the next webhook the id of a deleted one that had the
largest id, so a client holding the old id would read (or delete) the new
webhook. MySQL and MariaDB never reuse AUTO_INCREMENT ids: nothing to do there.

SQLite cannot add AUTOINCREMENT in place. Both tables are copied into new ones,
the old child and then the old parent dropped (so dropping the parent cascades
to nothing), and the copies renamed: the rename points the copied child's
foreign key at `webhooks` again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 13:45:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WEBHOOK_COLUMNS = (
    "id, url, event_types, event_id, secret, enabled, disabled_reason, created_at,"
    " delivered_up_to, failed_attempts, failing_since, next_attempt_at, lease_owner,"
    " lease_until"
)
DELIVERY_COLUMNS = (
    "id, webhook_id, entry_id, attempt, at, status_code, error, duration_ms, response_body"
)


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    now = sa.text("(strftime('%Y-%m-%d %H:%M:%f', 'now'))")  # as 0004's, to the millisecond
    op.create_table(
        "webhooks_new",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", sa.Text(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=now, nullable=False),
        sa.Column("delivered_up_to", sa.BigInteger(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.DateTime(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhooks"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "webhook_deliveries_new",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), server_default=now, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(1024), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks_new.id"],
            name="fk_webhook_deliveries_webhook_id_webhooks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sqlite_autoincrement=True,
    )
    op.execute(
        f"INSERT INTO webhooks_new ({WEBHOOK_COLUMNS}) SELECT {WEBHOOK_COLUMNS} FROM webhooks"
    )
    op.execute(
        f"INSERT INTO webhook_deliveries_new ({DELIVERY_COLUMNS})"
        f" SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries"
    )
    op.drop_index("ix_webhook_deliveries_webhook", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.rename_table("webhooks_new", "webhooks")
    op.rename_table("webhook_deliveries_new", "webhook_deliveries")
    op.create_index("ix_webhook_deliveries_webhook", "webhook_deliveries", ["webhook_id", "id"])


def downgrade():
    pass  # AUTOINCREMENT is harmless under 0005's code
