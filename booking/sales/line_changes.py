"""What one batch does to one event's line: the copy in memory changes at once, and
this remembers how to write the same to the table and the log at the batch's end."""

import json

from sqlalchemy import Connection

from ..storage import lines
from .waiting_lists import LOG_KEPT, Party, WaitingList

# A batch with more line ops than this (an opening that lines up thousands of parties)
# is not logged: the ops would outgrow the log's TEXT column, and a copy that far behind
# is read again faster than it replays them.
LOG_OPS_MOST = 1000


class LineChanges:
    __slots__ = ("changed", "joined", "left", "line", "ops", "overtaken_before")

    def __init__(self, line: WaitingList):
        self.line = line
        self.ops: list[list] = []  # in order, for other processes' copies
        self.joined: set[int] = set()  # seqs that joined in this batch
        self.left: list[int] = []  # committed seqs that left
        self.changed: set[int] = set()  # committed seqs shrunk
        self.overtaken_before: list[tuple[int, int]] = []  # (seq, total) per served party

    def join(self, seq: int, user_id: int, tickets: int) -> None:
        self.line.join(seq, user_id, tickets)
        self.joined.add(seq)
        self.ops.append(["j", seq, user_id, tickets])

    def leave(self, seq: int) -> Party:
        party = self.line.leave(seq)
        if seq in self.joined:
            self.joined.discard(seq)
        else:
            self.left.append(seq)
            self.changed.discard(seq)
        self.ops.append(["l", seq])
        return party

    def shrink(self, seq: int, tickets: int) -> None:
        self.line.shrink(seq, tickets)
        if seq not in self.joined:
            self.changed.add(seq)
        self.ops.append(["r", seq, tickets])

    def overtake(self, before_seq: int, total: int) -> list[Party]:
        passed = self.line.overtake(before_seq, total)
        if passed:
            self.overtaken_before.append((before_seq, total))
            self.ops.append(["o", before_seq, total])
        return passed

    def write(self, conn: Connection, event_id: int, version: int) -> None:
        """The table as the copy now is, and the ops logged as `version`."""
        parties = self.line.parties
        changed = [
            {"e": event_id, "s": seq, "t": parties[seq].tickets, "o": parties[seq].overtakes}
            for seq in sorted(self.changed)
        ]
        joined = [
            {
                "event_id": event_id,
                "user_id": parties[seq].user_id,
                "seq": seq,
                "tickets": parties[seq].tickets,
                "overtakes": parties[seq].overtakes,
            }
            for seq in sorted(self.joined)
        ]
        lines.write(conn, event_id, self.left, self.overtaken_before, changed, joined)
        if len(self.ops) > LOG_OPS_MOST:
            return  # other copies miss this version, so they read the line again
        ops = json.dumps(self.ops, separators=(",", ":"))
        lines.log_change(conn, event_id, version, ops, LOG_KEPT)
