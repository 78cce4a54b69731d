"""The in-memory copy of each event's waiting line, indexed for the allocation.

The waiting_list_entries table is the truth. A process keeps a copy per event,
stamped with the events.waitlist_version it matches. A batch changes the copy as
it goes (under the process lock) and logs each change as an op; at COMMIT the
ops are written to waiting_list_changes with the new version. When a batch finds
its copy behind the event's row (another process or host changed the line), it
replays the logged ops it missed; only a copy older than the log reloads the line.
If a batch does not commit, its copies are dropped and read again on next use.

Beside the parties in line order, a copy keeps a heap of seqs per party size and a
heap of the parties at the event's overtake limit, so the allocation finds the
first party that fits F free tickets in at most one step per size up to F, and
the first party that may not be passed in one step (sales/allocation.py).
"""

import heapq
import json
import threading
from collections import OrderedDict

from sqlalchemy import Connection

from .. import metrics
from ..storage import lines

LOG_KEPT = 256  # versions of a line's changes kept for other processes' copies


class Party:
    __slots__ = ("overtakes", "seq", "tickets", "user_id")

    def __init__(self, seq: int, user_id: int, tickets: int, overtakes: int = 0):
        self.seq = seq
        self.user_id = user_id
        self.tickets = tickets
        self.overtakes = overtakes


class WaitingList:
    """One event's line: parties by seq in line order, with indexes for the allocation."""

    __slots__ = ("_by_size", "_limit", "_limited", "last_seq", "parties", "seq_of", "version")

    def __init__(self, version: int, rows: list[tuple[int, int, int, int]]):
        self.version = version
        self.parties: dict[int, Party] = {}  # seq -> party; dicts keep insertion order
        self.seq_of: dict[int, int] = {}  # user_id -> seq
        self._by_size: dict[int, list[int]] = {}  # tickets -> heap of seqs (stale ones skipped)
        self._limit: int | None = None  # the overtake limit _limited was built for
        self._limited: list[int] = []  # heap of seqs at or past the limit
        self.last_seq = 0
        for seq, user_id, tickets, overtakes in rows:
            self.join(seq, user_id, tickets, overtakes)

    def __len__(self) -> int:
        return len(self.parties)

    def party(self, user_id: int) -> Party | None:
        seq = self.seq_of.get(user_id)
        return None if seq is None else self.parties[seq]

    def position(self, seq: int) -> int:
        """A party's 1-based place in line (walks the parties ahead of it)."""
        place = 1
        for other in self.parties:
            if other == seq:
                return place
            place += 1
        raise KeyError(seq)

    # The changes; each is also an op another process replays (apply).

    def join(self, seq: int, user_id: int, tickets: int, overtakes: int = 0) -> None:
        party = Party(seq, user_id, tickets, overtakes)
        self.parties[seq] = party
        self.seq_of[user_id] = seq
        heapq.heappush(self._by_size.setdefault(tickets, []), seq)
        if self._limit is not None and overtakes >= self._limit:
            heapq.heappush(self._limited, seq)
        self.last_seq = max(self.last_seq, seq)

    def leave(self, seq: int) -> Party:
        party = self.parties.pop(seq)
        del self.seq_of[party.user_id]
        return party

    def shrink(self, seq: int, tickets: int) -> None:
        """Fewer tickets, the same place and overtakes."""
        self.parties[seq].tickets = tickets
        heapq.heappush(self._by_size.setdefault(tickets, []), seq)

    def overtake(self, before_seq: int, total: int) -> list[Party]:
        """One more overtake for every party before `before_seq` that is not larger than
        the event (`total`); those parties, in line order."""
        passed = []
        for seq, party in self.parties.items():
            if seq >= before_seq:
                break
            if party.tickets <= total:
                party.overtakes += 1
                passed.append(party)
                if self._limit is not None and party.overtakes == self._limit:
                    heapq.heappush(self._limited, seq)
        return passed

    def apply(self, op: list) -> None:
        """Replay a logged op (see Batch's line changes)."""
        kind = op[0]
        if kind == "j":
            self.join(*op[1:])
        elif kind == "l":
            self.leave(op[1])
        elif kind == "r":
            self.shrink(op[1], op[2])
        elif kind == "o":
            self.overtake(op[1], op[2])
        else:
            raise ValueError(f"unknown line op {op!r}")

    # The allocation's two questions.

    def first_fitting(self, free: int) -> Party | None:
        """The earliest party of at most `free` tickets: one look per size up to `free`."""
        best = None
        for size, heap in self._by_size.items():
            if size > free:
                continue
            while heap:
                party = self.parties.get(heap[0])
                if party is not None and party.tickets == size:
                    if best is None or party.seq < best.seq:
                        best = party
                    break
                heapq.heappop(heap)  # left the line, or shrank to another size
        return best

    def first_limited(self, limit: int, total: int) -> Party | None:
        """The earliest party passed over `limit` times or more that is not larger than
        the event (`total`): the one that may not be passed again."""
        if self._limit != limit:
            self._limit = limit
            self._limited = [s for s, p in self.parties.items() if p.overtakes >= limit]
            heapq.heapify(self._limited)
        heap = self._limited
        while heap and heap[0] not in self.parties:
            heapq.heappop(heap)  # left the line
        if not heap:
            return None
        first = self.parties[heap[0]]
        if first.tickets <= total:
            return first
        # Rare: the first one is larger than the event (its capacity went down).
        for seq in sorted(heap):
            party = self.parties.get(seq)
            if party is not None and party.tickets <= total:
                return party
        return None


class WaitingLists:
    """Per-event copies, the least recently used dropped past `capacity`."""

    def __init__(self, capacity: int = 1024):
        self.capacity = capacity
        self._lists: OrderedDict[int, WaitingList] = OrderedDict()
        self._guard = threading.Lock()

    def sync(self, conn: Connection, event) -> WaitingList:
        """The copy for `event` (a row read under the lock in this transaction), current."""
        with self._guard:
            line = self._lists.get(event.id)
        if line is not None and line.version != event.waitlist_version:
            line = self._catch_up(conn, event, line)
        if line is None:
            metrics.WAITLIST_RELOADS.inc()
            line = WaitingList(event.waitlist_version, lines.parties(conn, event.id))
        self._keep(event.id, line)
        return line

    def _catch_up(self, conn: Connection, event, line: WaitingList) -> WaitingList | None:
        """Replay the logged changes the copy missed; None if the log no longer has them."""
        changes = lines.changes_after(conn, event.id, line.version)
        # Every version since the copy's, none left out (a batch too large to log is not);
        # a copy ahead of the row (an event id reused after a restore) has none to replay.
        if not changes or [version for version, _ in changes] != list(
            range(line.version + 1, event.waitlist_version + 1)
        ):
            return None
        for _, ops in changes:
            for op in json.loads(ops):
                line.apply(op)
        line.version = event.waitlist_version
        return line

    def committed(self, event_id: int, version: int) -> None:
        """The batch that changed the copy committed as `version`."""
        with self._guard:
            line = self._lists.get(event_id)
        if line is not None:
            line.version = version

    def drop(self, event_id: int) -> None:
        """The batch that changed the copy did not commit: read it again on next use."""
        with self._guard:
            self._lists.pop(event_id, None)

    def _keep(self, event_id: int, line: WaitingList) -> None:
        with self._guard:
            self._lists[event_id] = line
            self._lists.move_to_end(event_id)
            while len(self._lists) > self.capacity:
                self._lists.popitem(last=False)
