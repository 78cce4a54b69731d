"""The in-memory copy of each event's waiting list.

The waiting_list_entries table is the truth. A process keeps a deque per event,
stamped with the events.waitlist_version it matches. Before a change uses the
copy, `WaitingLists.sync` compares that stamp with the row read under the lock
and catches up with what other processes or hosts did meanwhile:

- entries are only ever appended with a growing seq, so new ones are the rows
  with seq above the last one this copy has seen;
- entries leave from the head (promotion) far more often than from the middle,
  so the copy drops its head entries the table no longer has;
- if the count still disagrees with events.waiting_count, someone left from the
  middle: reload the whole list.

Catching up costs the changes made elsewhere, not the length of the list.
A copy may only be used or changed under the process lock (changes change it
only after their COMMIT); the registry guards itself.
"""

import threading
from collections import OrderedDict, deque

from sqlalchemy import Connection

from .. import metrics
from ..storage import tickets


class WaitingList:
    """One event's line: user ids in order, and each one's seq for catching up."""

    __slots__ = ("last_seq", "queue", "seqs", "version")

    def __init__(self, version: int, rows: list[tuple[int, int]]):
        self.version = version
        self.queue: deque[int] = deque(user_id for _, user_id in rows)
        self.seqs: dict[int, int] = {user_id: seq for seq, user_id in rows}
        self.last_seq = rows[-1][0] if rows else 0

    def __len__(self) -> int:
        return len(self.queue)

    def head(self) -> int | None:
        return self.queue[0] if self.queue else None

    def append(self, user_id: int, seq: int) -> None:
        self.queue.append(user_id)
        self.seqs[user_id] = seq
        self.last_seq = max(self.last_seq, seq)

    def pop_head(self) -> int:
        user_id = self.queue.popleft()
        del self.seqs[user_id]
        return user_id

    def remove(self, user_id: int) -> None:
        if self.queue and self.queue[0] == user_id:
            self.pop_head()
            return
        self.queue.remove(user_id)
        del self.seqs[user_id]


class WaitingLists:
    """Per-event copies, the least recently used dropped past `capacity`."""

    def __init__(self, capacity: int = 1024):
        self.capacity = capacity
        self._lists: OrderedDict[int, WaitingList] = OrderedDict()
        self._guard = threading.Lock()

    def sync(self, conn: Connection, event) -> WaitingList:
        """The copy for `event` (a row read in this transaction), made current."""
        with self._guard:
            line = self._lists.get(event.id)
        if line is not None and line.version != event.waitlist_version:
            line = self._catch_up(conn, event, line)
        if line is None:
            metrics.WAITLIST_RELOADS.inc()
            line = WaitingList(event.waitlist_version, tickets.waiting_rows(conn, event.id))
        self._keep(event.id, line)
        return line

    def _catch_up(self, conn: Connection, event, line: WaitingList) -> WaitingList | None:
        if event.next_waiting_seq - 1 > line.last_seq:
            for seq, user_id in tickets.waiting_rows(conn, event.id, after_seq=line.last_seq):
                line.append(user_id, seq)
        if len(line) > event.waiting_count:
            head_seq = tickets.head_seq(conn, event.id)
            while line.queue and (head_seq is None or line.seqs[line.queue[0]] < head_seq):
                line.pop_head()
        if len(line) != event.waiting_count:
            return None  # someone left from the middle: reload
        line.version = event.waitlist_version
        return line

    def changed(self, event_id: int, from_version: int, change) -> None:
        """Apply a committed change to the copy, if the copy was at `from_version`."""
        with self._guard:
            line = self._lists.get(event_id)
        if line is None:
            return
        if line.version != from_version:
            # Someone else caught it up or it is stale; the next sync repairs it.
            return
        change(line)
        line.version = from_version + 1

    def _keep(self, event_id: int, line: WaitingList) -> None:
        with self._guard:
            self._lists[event_id] = line
            self._lists.move_to_end(event_id)
            while len(self._lists) > self.capacity:
                self._lists.popitem(last=False)
