"""The journal's reading side: an event's history, a page at a time, in commit order."""

from sqlalchemy import Engine

from ..sales.domain import EventNotFound, paged
from ..storage import journal, tickets


def page(engine: Engine, event_id: int, after: int, limit: int) -> tuple[list[dict], int | None]:
    """The event's journal entries after entry `after`, and the next page's cursor."""
    journal.sequence(engine)  # what is committed gets its entry id before it is read
    with engine.connect() as conn:
        if tickets.event(conn, event_id) is None:
            raise EventNotFound(event_id)
        entries = journal.event_history(conn, event_id, after, limit + 1)
    return paged(entries, limit, lambda entry: entry["entry_id"])
