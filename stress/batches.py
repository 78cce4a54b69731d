"""The group-commit batches a scenario's servers ran, from their log files.

At LOG_LEVEL=INFO each batch logs one JSON line (logger `booking.batches`):
outcome "committed", "rerun" (an unexpected error: its changes ran again one by
one) or "failed" (every request in it got a 503, nothing committed), with its
batchSize. Every server of the stress run logs to its own `*.log` in one
directory, and the scenarios run one after another, so what a scenario's
servers logged is what the directory's log files gained while it ran:
`LogMarks` notes where each file ended before, `read_batches` reads from there.
"""

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Cheap to find in a line: the per-request lines around them are many more.
MARKER = b'"logger": "booking.batches"'


@dataclass
class Batches:
    sizes: list[int] = field(default_factory=list)  # batchSize of each batch, in log order
    outcomes: Counter = field(default_factory=Counter)  # committed, rerun, failed
    unreadable: int = 0  # batch lines cut short (a worker SIGKILLed mid-write)

    def add(self, record: dict) -> None:
        self.sizes.append(int(record["batchSize"]))
        self.outcomes[record["outcome"]] += 1

    @property
    def mean(self) -> float:
        return sum(self.sizes) / len(self.sizes) if self.sizes else 0.0

    @property
    def p99(self) -> int:
        """Nearest rank: 99% of the batches held at most this many changes."""
        if not self.sizes:
            return 0
        ordered = sorted(self.sizes)
        return ordered[math.ceil(0.99 * len(ordered)) - 1]

    @property
    def changes(self) -> int:
        return sum(self.sizes)

    def summary(self) -> str:
        return (
            f"{len(self.sizes)} batches of {self.changes} changes: mean {self.mean:.1f},"
            f" p99 {self.p99}, max {max(self.sizes, default=0)};"
            f" outcomes {dict(sorted(self.outcomes.items()))};"
            f" lines unreadable: {self.unreadable}"
        )


class LogMarks:
    """Where each log file in `directory` ended when the marks were taken."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.ends = {path: path.stat().st_size for path in self.directory.glob("*.log")}


def read_batches(marks: LogMarks) -> Batches:
    """The batch lines the directory's log files gained since `marks`.

    Only `*.log`: the servers' stderr copies (`*.out`) hold the same lines again.
    """
    found = Batches()
    for path in sorted(marks.directory.glob("*.log")):
        with path.open("rb") as log:
            log.seek(marks.ends.get(path, 0))
            for line in log:
                if MARKER in line:
                    _parse(line, found)
    return found


def _parse(line: bytes, into: Batches) -> None:
    try:
        record = json.loads(line)
    except ValueError:
        into.unreadable += 1
        return
    if record.get("message") == "batch":
        into.add(record)
