"""The one clock every lapse is decided by: the database's, read once per batch.

Every host shares the database's clock, so an offer or hold lapses at the same moment
whoever looks. `offset` is the seam a test moves to let time pass without sleeping
(the state machine and the hold races); it is zero in service.
"""

from datetime import datetime, timedelta

from sqlalchemy import Connection

from ..storage import journal


class Clock:
    def __init__(self):
        self.offset = timedelta(0)

    def now(self, conn: Connection) -> datetime:
        """The database's time in UTC (naive, as the columns store it), moved by `offset`."""
        return journal.database_now(conn) + self.offset
