"""parties: several tickets per booking, place in line and offer; overtakes; a line's
changes for other processes' copies

- bookings, waiting_list_entries and offers get `tickets` (1 for every existing row);
  waiting_list_entries get `overtakes` (how often the party was passed over);
- events get `max_tickets_per_booking` (10), `max_overtakes` (3), `waiting_tickets`
  (the waiting parties' tickets, set from the rows) and `held_back_tickets` (free
  tickets waiting for a blocking party);
- waiting_list_changes: what each batch did to an event's line, so another process
  brings its in-memory copy up to date by replaying it instead of reloading the line.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 11:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tickets():
    return sa.Column("tickets", sa.Integer(), nullable=False, server_default="1")


def upgrade():
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(_tickets())
        batch.create_check_constraint(op.f("ck_bookings_tickets_positive"), "tickets >= 1")
    with op.batch_alter_table("waiting_list_entries") as batch:
        batch.add_column(_tickets())
        batch.add_column(sa.Column("overtakes", sa.Integer(), nullable=False, server_default="0"))
        batch.create_check_constraint(op.f("ck_waiting_list_entries_tickets_positive"), "tickets >= 1")
    with op.batch_alter_table("offers") as batch:
        batch.add_column(_tickets())
        batch.create_check_constraint(op.f("ck_offers_tickets_positive"), "tickets >= 1")
    with op.batch_alter_table("events") as batch:
        for name, default in (
            ("max_tickets_per_booking", "10"),
            ("max_overtakes", "3"),
            ("waiting_tickets", "0"),
            ("held_back_tickets", "0"),
        ):
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default=default))
    # Every existing place is one ticket.
    op.execute("UPDATE events SET waiting_tickets = waiting_count")
    op.create_table(
        "waiting_list_changes",
        sa.Column("event_id", ID, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("ops", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_waiting_list_changes_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "version", name=op.f("pk_waiting_list_changes")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


def downgrade():
    op.drop_table("waiting_list_changes")
    with op.batch_alter_table("events") as batch:
        for name in ("held_back_tickets", "waiting_tickets", "max_overtakes"):
            batch.drop_column(name)
        batch.drop_column("max_tickets_per_booking")
    for table in ("offers", "waiting_list_entries", "bookings"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"ck_{table}_tickets_positive", type_="check")
            if table == "waiting_list_entries":
                batch.drop_column("overtakes")
            batch.drop_column("tickets")
