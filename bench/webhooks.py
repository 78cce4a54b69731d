"""The hot event again while a webhook worker delivers every journal entry to a receiver.

One webhook for every type and every event points at a loopback receiver
(receiver.py), and one worker (`flask --app wsgi worker` with gunicorn's
settings, default poll interval, counted with gunicorn by the CPU meter)
delivers while the hot event is booked as in scenarios.hot_event. The worker
first sequences the earlier scenarios' entries; the webhook starts after them,
so it is sent exactly this event's entries.

The row is the hot event's, plus the deliveries: entries delivered, per second
while the bookings ran and overall, the drain (last receipt after the last
booking answer), and commit-to-receipt latency (receipt time minus the body's
`timestamp`, the entry's commit time from MariaDB's UTC_TIMESTAMP: both this
machine's clock, the latter to the millisecond). Every entry of the event must
arrive exactly once, in increasing webhook-id order, correctly signed, with no
failed attempt; otherwise the row's invariants (or errors) fail. The worker's
failed passes (its log's warnings) are counted, not judged. The worker's CPU (its
process, from before the bookings until the drain ended) and the receiver's (its thread
in this process, which the load generator shares: its GIL too) are reported per entry.
At the end the webhook is deleted, so that no later run's worker keeps trying a receiver
that is gone.

side_by_side: the same burst without the worker (not started; the journal is written
either way), just before and just after the run with it, with the same client and
sizes; the row with the worker carries the ratio of its req/s to the mean of the two
without (the mean cancels a drift of the machine over the three).
"""

import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from . import scenarios
from .checks import Checked
from .cpu import TICKS
from .receiver import Arrival, Receiver
from .server import ROOT, _read_stat, stop_process
from .stats import percentile

NAME = "hot event, webhook + worker"
OFF = "hot event, webhook worker off"
STALL_S = 30.0  # give up the drain when nothing arrived for this long
GRACE_S = 0.5  # after the last expected entry: room for a duplicate to show itself
# booking.notify.worker's warning when a pass raised (a deadlock, say) and waits a poll interval.
PASS_FAILED = "worker pass failed"


class WorkerProcess:
    """`flask --app wsgi worker` with the site's gunicorn's settings (its database, admin
    account, WEBHOOK_ALLOW_PRIVATE=true), its own log; stopped with SIGTERM by its PID."""

    def __init__(self, server_env: dict, log_dir: str):
        self.log_file = os.path.join(log_dir, "worker.log")
        self.stderr_file = os.path.join(log_dir, "worker-stderr.log")
        self.env = {**server_env, "WEBHOOK_ALLOW_PRIVATE": "true", "LOG_FILE": self.log_file}
        self.env.pop("WORKER_POLL_INTERVAL", None)  # the default, 0.25 s
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "flask", "--app", "wsgi", "worker"]
        with open(self.stderr_file, "ab") as stderr:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                stdout=stderr, stderr=stderr, start_new_session=True,
            )  # fmt: skip

    @property
    def master_pid(self) -> int:  # for the CPU meter, as Gunicorn's
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_seconds(self) -> float:
        stat = _read_stat(self.master_pid)
        return 0.0 if stat is None else (int(stat[11]) + int(stat[12])) / TICKS

    def stop(self, timeout: float = 30) -> None:
        stop_process(self.process, timeout)


def _scalar(engine: sa.Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def _wait(ready, worker: WorkerProcess, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not worker.running() or time.monotonic() > deadline:
            raise RuntimeError(f"webhook worker: {what} did not happen; see {worker.stderr_file}")
        time.sleep(0.05)


def _count(log_file: str, message: str) -> int:
    try:
        with open(log_file, "rb") as log:
            return log.read().decode(errors="replace").count(message)
    except FileNotFoundError:
        return 0


def _drain(receiver: Receiver, expected: int, worker: WorkerProcess) -> None:
    """Until `expected` requests arrived, the worker exited, or nothing came for STALL_S."""
    seen, changed = -1, time.monotonic()
    while (got := len(receiver.arrivals)) < expected and worker.running():
        if got != seen:
            seen, changed = got, time.monotonic()
        elif time.monotonic() - changed > STALL_S:
            break
        time.sleep(0.02)
    time.sleep(GRACE_S)


def subscribe(ctx, worker: WorkerProcess, receiver: Receiver) -> dict:
    """Start the worker, let it sequence the journal so far, then subscribe the receiver
    to every type: it is sent what commits from now on."""
    worker.start()
    unsequenced = "SELECT COUNT(*) FROM journal_entries WHERE entry_id IS NULL"
    _wait(lambda: _scalar(ctx.engine, unsequenced) == 0, worker, "sequencing the backlog")
    status, hook = ctx.api.call(
        "POST", "/api/webhooks", {"url": receiver.url, "eventTypes": ["*"]}, admin=True
    )
    if status != 201:
        raise RuntimeError(f"creating the webhook: {status} {hook}")
    return hook


def run(
    ctx: scenarios.Context, servers: list, name: str = NAME, in_flight: int | None = None
) -> dict:
    """`in_flight`: the bookings' concurrency, if not the scale's (1: one at a time, a
    steady stream that leaves the worker CPU to keep up with)."""
    if in_flight is not None:
        ctx = replace(ctx, scale=replace(ctx.scale, concurrency=in_flight))
    receiver = Receiver()
    worker = WorkerProcess(ctx.server.env, os.path.dirname(ctx.server.log_file))
    receiver.start()
    servers.append(worker)  # the CPU meter counts it with the servers
    try:
        hook = subscribe(ctx, worker, receiver)
        cpu_before, receiver_before = worker.cpu_seconds(), receiver.cpu_seconds()
        row = scenarios.hot_event(ctx, name=name)
        ended_at = row["started_at"] + row["wall_s"]
        event_id = row["event_id"]
        expected = _scalar(
            ctx.engine, "SELECT COUNT(*) FROM journal_entries WHERE event_id = :e", e=event_id
        )
        ctx.say(f"{name}: waiting for {expected} deliveries ({len(receiver.arrivals)} so far)")
        _drain(receiver, expected, worker)
        worker_cpu = worker.cpu_seconds() - cpu_before
        receiver_cpu = receiver.cpu_seconds() - receiver_before
        worker.stop()
        exited = worker.process.returncode
    finally:
        worker.stop()
        servers.remove(worker)
        receiver.stop()
    with ctx.engine.connect() as conn:
        ids = conn.execute(
            sa.text("SELECT entry_id FROM journal_entries WHERE event_id = :e ORDER BY entry_id"),
            {"e": event_id},
        ).scalars()
        journal_ids = list(ids)
        attempts, delivered = conn.execute(
            sa.text(
                "SELECT COUNT(*), COALESCE(SUM(status_code BETWEEN 200 AND 299), 0)"
                " FROM webhook_deliveries WHERE webhook_id = :w"
            ),
            {"w": hook["webhookId"]},
        ).one()
    status, _ = ctx.api.call("DELETE", f"/api/webhooks/{hook['webhookId']}", admin=True)
    if status != 204:
        ctx.say(f"{name}: deleting webhook {hook['webhookId']} answered {status}")
    checked, figures = _deliveries(
        receiver.arrivals, hook["secret"], event_id, journal_ids, row, ended_at
    )
    checked.expect(exited == 0, f"the worker exited with {exited} on SIGTERM")
    failed = int(attempts) - int(delivered)
    row["invariants_ok"] = row["invariants_ok"] is not False and checked.ok
    row["problems"] = (row["problems"] + checked.problems)[:20]
    row["errors"] += failed
    if failed:
        row["error_samples"].append(f"{failed} failed delivery attempts; see {worker.log_file}")
    figures.update(attempts=int(attempts), failed_attempts=failed)
    figures["failed_passes"] = _count(worker.log_file, PASS_FAILED)
    entries = max(len(journal_ids), 1)
    figures["worker_cpu_ms_per_entry"] = round(worker_cpu * 1000 / entries, 3)
    figures["receiver_cpu_ms_per_entry"] = round(receiver_cpu * 1000 / entries, 3)
    row["webhook"] = figures
    ctx.say(
        f"{name}: {figures['delivered']}/{figures['entries']} delivered, drain"
        f" {figures['drain_s']} s, latency p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms"
    )
    return row


def side_by_side(ctx: scenarios.Context, servers: list) -> dict[str, dict]:
    """The hot event without the worker, with it delivering every entry, without it again;
    their rows, the one with the worker carrying `webhook.beside`."""
    before = scenarios.hot_event(ctx, name=f"{OFF} (before)")
    with_worker = run(ctx, servers)
    after = scenarios.hot_event(ctx, name=f"{OFF} (after)")
    without = [before["rps"], after["rps"]]
    mean = sum(without) / len(without)
    with_worker["webhook"]["beside"] = {
        "without_rps": without,
        "without_rps_mean": round(mean, 1),
        "with_rps": with_worker["rps"],
        "ratio": round(with_worker["rps"] / mean, 3) if mean else None,
        "client": "aiohttp",
    }
    return {"hot webhook off 1": before, "hot webhook": with_worker, "hot webhook off 2": after}


def _deliveries(
    arrivals: list[Arrival], secret: str, event_id: int, journal_ids: list, row: dict, ended: float
) -> tuple[Checked, dict]:
    """The invariants of what arrived, and the figures of the row's delivery table."""
    checked = Checked()
    signer = Webhook(secret)
    ids, latencies, unsigned, foreign, malformed = [], [], 0, 0, 0
    for arrival in arrivals:
        try:
            signer.verify(arrival.body, arrival.headers, json_parse=False)
        except WebhookVerificationError:
            unsigned += 1
        try:
            body = json.loads(arrival.body)
            entry_id, of_event = int(arrival.headers["webhook-id"]), body["data"]["eventId"]
            committed = datetime.fromisoformat(body["timestamp"]).timestamp()
        except (ValueError, KeyError, TypeError):
            malformed += 1
            continue
        ids.append(entry_id)
        foreign += of_event != event_id
        latencies.append((arrival.at - committed) * 1000)
    twice = sum(n - 1 for n in Counter(ids).values())
    checked.expect(None not in journal_ids, "an entry of the event has no entry id")
    checked.expect(
        sorted(set(ids)) == journal_ids,
        f"{len(set(ids))} distinct entries arrived of the event's {len(journal_ids)}",
    )
    checked.expect(twice == 0, f"{twice} entries arrived more than once")
    checked.expect(ids == sorted(ids), "entries arrived out of webhook-id order")
    checked.expect(foreign == 0, f"{foreign} entries of other events arrived")
    checked.expect(unsigned == 0, f"{unsigned} requests failed signature verification")
    checked.expect(malformed == 0, f"{malformed} requests had no webhook-id, eventId or timestamp")
    started = row["started_at"]
    during = sum(1 for a in arrivals if started <= a.at <= ended)
    last = max((a.at for a in arrivals), default=ended)
    values = sorted(latencies)
    return checked, {
        "webhook_event_id": event_id,
        "entries": len(journal_ids),
        "delivered": len(arrivals),
        "delivered_in_run": during,
        "in_run_per_s": round(during / row["wall_s"], 1) if row["wall_s"] else 0.0,
        "overall_per_s": round(len(arrivals) / (last - started), 1) if last > started else 0.0,
        "drain_s": round(last - ended, 3),
        **{f"p{p}_ms": round(percentile(values, p), 1) for p in (50, 95, 99)},
        "max_ms": round(values[-1], 1) if values else 0.0,
    }
