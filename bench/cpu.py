"""Who used the cores during a measured stretch.

On a 2-core machine the load generator competes with gunicorn and MariaDB (and,
on a shared machine, with whatever else runs), so every measured stretch
reports the CPU each used over its wall time, in percent of one core (the
machine's ceiling is 100 x nproc). From /proc/<pid>/stat (utime + stime) of
every process, before and after, sorted by ancestry:

- client: this process (the aiohttp load generator) and its children other
  than gunicorn and mariadbd (the direct-transaction processes, py-spy);
- gunicorn: the masters and their workers;
- mariadbd: the database servers (which serve anyone else's queries too),
  the Galera cluster's nodes included although this process started them;
- others: every other process, with the children it reaped meanwhile
  (cutime + cstime), the busiest named in the JSON;
- unattributed: the machine's busy time (/proc/stat) no process was charged
  with: interrupts, processes that exited unreaped or whose parent exited.
"""

import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    name: str
    ppid: int
    started: int  # clock ticks after boot: tells a reused pid from the same process
    cpu: float  # seconds, its own
    reaped: float  # seconds its children used that it has waited for (cutime + cstime)


@dataclass
class Sample:
    wall: float
    processes: dict[int, Process]
    machine_busy: float
    machine_total: float


def _processes() -> dict[int, Process]:
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        reaped = (int(fields[13]) + int(fields[14])) / TICKS  # cutime + cstime
        found[int(entry)] = Process(name, int(fields[1]), int(fields[19]), cpu, reaped)
    return found


def _machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds over all cores since boot."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle) / TICKS, total / TICKS


def _descends(pid: int, ancestor: int | None, processes: dict[int, Process]) -> bool:
    seen = 0
    while ancestor is not None and pid in processes and seen < 64:
        if pid == ancestor:
            return True
        pid = processes[pid].ppid
        seen += 1
    return False


def _command(pid: int, name: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            args = cmdline.read().split(b"\0")
    except OSError:
        return name
    words = [a.decode(errors="replace").rsplit("/", 1)[-1] for a in args[:4] if a]
    return " ".join(words)[:60] or name


class CpuMeter:
    def __init__(self, server_pids: Callable[[], list[int]] = list):
        self.server_pids = server_pids
        self.own_pid = os.getpid()

    def sample(self) -> Sample:
        busy, total = _machine_seconds()
        return Sample(time.perf_counter(), _processes(), busy, total)

    def shares(self, before: Sample, after: Sample) -> dict:
        """Percent of one core each group used between two samples."""
        wall = max(after.wall - before.wall, 1e-9)
        servers = self.server_pids()
        groups: dict[str, float] = defaultdict(float)
        others: dict[str, float] = defaultdict(float)

        # A reaped child's CPU lands in its parent's cutime all at once, lifetime and all:
        # take off what children that were alive at the first sample had used by then.
        # A process that exits is reaped by its parent, and that one's totals by its own parent
        # when it exits: charge what each had used by the first sample to the nearest ancestor
        # still alive at the second.
        def alive(pid: int) -> bool:
            earlier, later = before.processes.get(pid), after.processes.get(pid)
            return later is not None and (earlier is None or earlier.started == later.started)

        spent_before: dict[int, float] = defaultdict(float)
        for pid, process in before.processes.items():
            if alive(pid):
                continue
            ancestor, hops = process.ppid, 0
            while ancestor in before.processes and not alive(ancestor) and hops < 64:
                ancestor, hops = before.processes[ancestor].ppid, hops + 1
            spent_before[ancestor] += process.cpu + process.reaped
        for pid, process in after.processes.items():
            earlier = before.processes.get(pid)
            same = earlier is not None and earlier.started == process.started
            used = process.cpu - (earlier.cpu if same else 0)
            # What exited children used, once this process waited for them (others' short
            # test processes, say). Not for ours: the direct-transaction processes report
            # their own CPU from the common start on, without their start-up.
            reaped = process.reaped - (earlier.reaped if same else 0) - spent_before[pid]
            reaped = max(reaped, 0.0)
            if any(_descends(pid, server, after.processes) for server in servers):
                groups["gunicorn"] += used + reaped
            elif process.name in ("mariadbd", "mysqld"):
                # Before the client: the cluster's Galera nodes are this process's children.
                groups["mariadbd"] += used + reaped
            elif _descends(pid, self.own_pid, after.processes):
                groups["client"] += used
            elif used + reaped > 0:
                groups["others"] += used + reaped
                others[_command(pid, process.name)] += used + reaped
        cores = os.cpu_count() or 1
        machine_total = max(after.machine_total - before.machine_total, 1e-9)
        busy = cores * (after.machine_busy - before.machine_busy) / machine_total * wall
        charged = sum(groups.values())

        def pct(seconds: float) -> float:
            return round(100 * seconds / wall, 1)

        return {
            "wall_s": round(wall, 3),
            **{f"{group}_pct": pct(groups[group]) for group in ("client", "gunicorn", "mariadbd")},
            "others_pct": pct(groups["others"]),
            "unattributed_pct": pct(max(busy - charged, 0.0)),
            "machine_busy_pct": pct(busy),
            "machine_capacity_pct": 100 * cores,
            "busiest_others": {
                name: pct(seconds)
                for name, seconds in sorted(others.items(), key=lambda kv: -kv[1])[:5]
                if pct(seconds) >= 1
            },
        }


def combine(shares: list[dict]) -> dict:
    """Several stretches' shares as one: each percentage weighted by its stretch's wall time."""
    if not shares:
        return {}
    wall = sum(s["wall_s"] for s in shares) or 1e-9
    combined = {"wall_s": round(wall, 3)}
    for key, value in shares[0].items():
        if key.endswith("_pct") and key != "machine_capacity_pct":
            combined[key] = round(sum(s[key] * s["wall_s"] for s in shares) / wall, 1)
        elif key not in combined and not isinstance(value, dict):
            combined[key] = value
    others: dict[str, float] = defaultdict(float)
    for s in shares:
        for name, pct in s.get("busiest_others", {}).items():
            others[name] += pct * s["wall_s"] / wall
    combined["busiest_others"] = {
        name: round(pct, 1) for name, pct in sorted(others.items(), key=lambda kv: -kv[1])[:5]
    }
    return combined


def per_request(cpu: dict, requests: int) -> dict:
    """The shares as CPU milliseconds per request: what one request cost each group,
    whatever the rate (pct / 100 x wall_s x 1000 / requests)."""
    if not cpu or not requests:
        return cpu
    return {
        **cpu,
        "requests": requests,
        **{
            f"{group}_ms_per_req": round(cpu[f"{group}_pct"] * cpu["wall_s"] * 10 / requests, 3)
            for group in ("gunicorn", "mariadbd", "client")
        },
    }
