"""Group-commit batches of a measured stretch, read from the servers' own log lines.

Each gunicorn worker writes one "booking.batches" JSON line per batch to its
server's LOG_FILE, before it answers the batch's requests: once every answer of
a stretch is in, so are its batches. A stretch remembers each log file's size
(`marks`) before it starts and reads only the lines appended after (`since`).

Sizes and holdMs are of committed batches. A "rerun" batch ran its changes
again one by one (those commits write no batch line), a "failed" one answered
every request with a 503.
"""

import json
import os
from collections import Counter
from collections.abc import Iterable

from .stats import percentile

LOGGER = "booking.batches"


def marks(paths: Iterable[str]) -> dict[str, int]:
    """Each log file's size now: where the next stretch's lines begin."""
    return {path: os.path.getsize(path) if os.path.exists(path) else 0 for path in paths}


def new_lines(path: str, offset: int) -> tuple[list[dict], int]:
    """The complete JSON lines after `offset`, and the offset after the last of them."""
    with open(path, "rb") as log:
        log.seek(offset)
        data = log.read()
    end = data.rfind(b"\n") + 1  # a line still being written is left for the next read
    lines = []
    for raw in data[:end].splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines, offset + end


def since(marked: dict[str, int]) -> list[dict]:
    """The batch lines appended to each log file after its mark."""
    found = []
    for path, offset in marked.items():
        if os.path.exists(path):
            lines, _ = new_lines(path, offset)
            found.extend(line for line in lines if line.get("logger") == LOGGER)
    return found


def _ms(values: list[float], pct: float) -> float | None:
    return round(percentile(values, pct), 2) if values else None


def summarize(lines: list[dict]) -> dict:
    """Counts, sizes and lock times of the batches in `lines`."""
    outcomes = Counter(line.get("outcome") for line in lines)
    committed = [line for line in lines if line.get("outcome") == "committed"]
    sizes = sorted(line["batchSize"] for line in committed)
    holds = sorted(line["holdMs"] for line in committed if line.get("holdMs") is not None)
    waits = sorted(line["waitMs"] for line in committed if line.get("waitMs") is not None)
    return {
        "batches": len(committed),
        "changes": sum(sizes),  # requests answered from committed batches
        "mean_size": round(sum(sizes) / len(sizes), 2) if sizes else None,
        "p99_size": percentile(sizes, 99) if sizes else None,
        "max_size": sizes[-1] if sizes else None,
        "rerun": outcomes["rerun"],
        "failed": outcomes["failed"],
        "hold_p50_ms": _ms(holds, 50),
        "hold_p99_ms": _ms(holds, 99),
        "wait_p50_ms": _ms(waits, 50),
        "wait_p99_ms": _ms(waits, 99),
        # Which worker processes led batches: with one queue per process, one busy
        # worker and one idle one would show here.
        "processes": len({line.get("process") for line in committed}),
        "lock_modes": sorted({line.get("lockMode") for line in committed if line.get("lockMode")}),
    }
