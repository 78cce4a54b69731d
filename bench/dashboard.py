"""The dashboard scenario: what deploy/grafana-dashboard.json would show of a hot sale.

On a site of its own (fresh counters, no earlier webhooks), while a Scraper reads
/metrics every 0.5 s and a webhook worker delivers every journal entry to a
loopback receiver (webhooks.py's worker and receiver):

1. idle for a moment (the panels' baseline);
2. on sale: dashboard_users book one event of dashboard_tickets tickets,
   dashboard_sale_concurrency in flight, a fifth of them reading the event's status after
   their answer: bookings, sold out half-way, then the waiting list;
3. cancels, dashboard_concurrency in flight, shuffled: holders cancel (each
   promotes the head of the line), people from the back half of the line leave
   it, and three kinds of refusal: holders book again, waiting people join
   again, people who hold nothing cancel;
4. the worker drains the journal; a moment of quiet after the last delivery.

Checked afterwards: the event's invariants (checks.py), every answer as
expected, every entry delivered once, in order, signed, with no failed attempt
(webhooks.py's checks), and the metrics themselves: each outcome's and refusal's
counter rose by exactly the answers given, and the delivered gauge ends at the
event's entries. dashboard_plot.py draws the scrapes.

`python -m bench.dashboard` runs this scenario alone (its own scratch database
and gunicorn) and draws bench/results/dashboard.png; `python -m bench` runs it too.
"""

import argparse
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from . import batches, load, scenarios
from .checks import Checked, check
from .receiver import Receiver
from .scrape import Scrape, Scraper
from .site import RESULTS, say, start_site
from .webhooks import WorkerProcess, _deliveries, _drain, _scalar, subscribe

IDLE_S = 1.5  # scrapes before the sale and after the last delivery
INTERVAL_S = 0.5


@dataclass
class DashboardRun:
    scrapes: list[Scrape]
    phases: list[tuple[str, float, float]]  # (name, start, end), time.time()
    interval: float
    checked: Checked
    figures: dict = field(default_factory=dict)
    setting: str = ""  # what ran, for the picture's title

    def summary(self) -> dict:
        """For latest.json: what ran and whether it held, not the scrapes."""
        start = self.scrapes[0].at if self.scrapes else 0.0
        return {
            "ok": self.checked.ok,
            "problems": self.checked.problems[:20],
            "scrapes": len(self.scrapes),
            "phases": {n: [round(a - start, 2), round(b - start, 2)] for n, a, b in self.phases},
            **self.figures,
        }


def run(ctx: scenarios.Context, interval: float = INTERVAL_S) -> DashboardRun:
    s = ctx.scale
    receiver = Receiver()
    worker = WorkerProcess(ctx.server.env, os.path.dirname(ctx.server.log_file))
    scraper = Scraper(ctx.base_url + "/metrics", interval)
    receiver.start()
    phases = []
    try:
        hook = subscribe(ctx, worker, receiver)
        scraper.start()
        time.sleep(IDLE_S)
        event_id = ctx.api.initialize("bench dashboard event", s.dashboard_tickets)
        users = ctx.new_users(s.dashboard_users)
        ctx.say(
            f"dashboard: {len(users)} users book event {event_id} ({s.dashboard_tickets}"
            f" tickets), {s.dashboard_sale_concurrency} in flight, scraped every {interval} s"
        )
        work = [
            (scenarios.book(event_id, u), scenarios.status(event_id))
            if i % 5 == 4
            else scenarios.book(event_id, u)
            for i, u in enumerate(users)
        ]
        marked = batches.marks(ctx.log_files)
        sale = load.run(ctx.base_url, work, s.dashboard_sale_concurrency)
        logged = {"on sale": batches.summarize(batches.since(marked))}
        phases.append(("on sale", sale.started_at, sale.started_at + sale.wall))
        booked, waitlisted = scenarios._outcomes(sale)
        work, expected = _cancel_work(ctx, event_id, booked, waitlisted)
        ctx.say(f"dashboard: {len(work)} cancels and refusals, {s.dashboard_concurrency} in flight")
        marked = batches.marks(ctx.log_files)
        cancels = load.run(ctx.base_url, work, s.dashboard_concurrency)
        logged["cancels"] = batches.summarize(batches.since(marked))
        phases.append(("cancels", cancels.started_at, cancels.started_at + cancels.wall))
        entries = _scalar(
            ctx.engine, "SELECT COUNT(*) FROM journal_entries WHERE event_id = :e", e=event_id
        )
        _drain(receiver, entries, worker)
        last = max((a.at for a in receiver.arrivals), default=phases[-1][2])
        phases.append(("worker drains", phases[-1][2], max(last, phases[-1][2])))
        time.sleep(IDLE_S)
    finally:
        scrapes = scraper.stop()
        worker.stop()
        receiver.stop()
    checked = check(ctx.engine, ctx.api, [event_id])
    answers = _answers(sale, cancels)
    want = {"booked": s.dashboard_tickets, "waitlisted": s.dashboard_users - s.dashboard_tickets}
    for outcome, count in {**want, **expected}.items():
        checked.expect(answers[outcome] == count, f"{answers[outcome]} {outcome}, not {count}")
    errors = sum(answers[k] for k in answers if k.startswith("unexpected"))
    checked.expect(errors == 0, f"{errors} unexpected answers: {dict(answers)}")
    with ctx.engine.connect() as conn:
        journal_ids = list(
            conn.exec_driver_sql(
                "SELECT entry_id FROM journal_entries WHERE event_id = %s ORDER BY entry_id",
                (event_id,),
            ).scalars()
        )
    timing = {"started_at": phases[0][1], "wall_s": phases[1][2] - phases[0][1]}
    delivered, webhook = _deliveries(
        receiver.arrivals, hook["secret"], event_id, journal_ids, timing, phases[1][2]
    )
    checked.problems.extend(delivered.problems)
    _check_metrics(checked, scrapes, answers, {**want, **expected}, len(journal_ids))
    figures = {
        "failed_scrapes": scraper.failed,
        "slowest_scrape_s": round(max((x.took for x in scrapes), default=0.0), 3),
        "answers": dict(answers),
        "sale_rps": round(len(sale.responses) / sale.wall, 1),
        "cancels_rps": round(len(cancels.responses) / cancels.wall, 1),
        "webhook": {
            k: webhook[k] for k in ("entries", "delivered", "in_run_per_s", "drain_s", "p99_ms")
        },
        # From the servers' logs, to compare with the batch and lock panels.
        "batches": logged,
    }
    logged_text = "; ".join(
        f"{name} mean {b['mean_size']}, hold p99 {b['hold_p99_ms']} ms, {b['processes']} processes"
        for name, b in logged.items()
    )
    ctx.say(
        f"dashboard: sale {figures['sale_rps']} req/s, cancels {figures['cancels_rps']} req/s;"
        f" {len(scrapes)} scrapes ({scraper.failed} failed, slowest {figures['slowest_scrape_s']}"
        f" s); {len(journal_ids)} entries delivered, {webhook['in_run_per_s']}/s during the load,"
        f" the last {webhook['drain_s']} s after the cancels;"
        f" logged batches: {logged_text};"
        f" {'OK' if checked.ok else 'FAILED: ' + '; '.join(checked.problems[:3])}"
    )
    setting = (
        f"{datetime.fromtimestamp(phases[0][1]).astimezone().isoformat(timespec='seconds')},"
        f" {os.cpu_count()} cores, gunicorn {ctx.server.workers} workers"
    )
    return DashboardRun(scrapes, phases, interval, checked, figures, setting)


def _cancel_work(ctx, event_id: int, booked: list[int], waitlisted: dict[int, int]):
    """The cancel phase's requests, shuffled, and the answers each kind should get."""
    s = ctx.scale
    line = sorted(waitlisted, key=waitlisted.get)
    back = line[len(line) // 2 :]  # never promoted: fewer cancels than half the line
    assert s.dashboard_cancels + s.dashboard_refusals <= len(booked)
    assert s.dashboard_cancels <= len(line) // 2
    assert s.dashboard_leaves + s.dashboard_refusals <= len(back)
    holders = booked[: s.dashboard_cancels]
    rebook = booked[s.dashboard_cancels :][: s.dashboard_refusals]
    leavers = back[: s.dashboard_leaves]
    rejoin = back[s.dashboard_leaves :][: s.dashboard_refusals]
    strangers = ctx.new_users(s.dashboard_refusals)
    work = [
        *(scenarios.cancel(event_id, u) for u in holders + leavers + strangers),
        *(scenarios.book(event_id, u) for u in rebook + rejoin),
    ]
    random.Random(13).shuffle(work)
    expected = {
        "cancelled": len(holders),
        "left_waiting_list": len(leavers),
        "already-booked": len(rebook),
        "already-waiting": len(rejoin),
        "nothing-to-cancel": len(strangers),
    }
    return work, expected


def _answers(*runs: load.Run) -> Counter:
    """Answers by outcome (2xx `status`) or problem type (4xx slug); others `unexpected`."""
    kinds: Counter = Counter()
    for run in runs:
        for r in run.responses:
            body = r.body if isinstance(r.body, dict) else {}
            if r.request.method == "GET":
                kinds["status" if r.status == 200 else f"unexpected {r.status}"] += 1
            elif r.status in (200, 201) and "status" in body:
                kinds[body["status"]] += 1
            elif r.status in (404, 409) and "type" in body:
                kinds[body["type"].rsplit(":", 1)[-1]] += 1
            else:
                kinds[f"unexpected {r.status} {r.error or ''}".strip()] += 1
    return kinds


def _check_metrics(checked: Checked, scrapes, answers, expected: dict, entries: int) -> None:
    """The counters rose by exactly the answers given; the delivered gauge ends at entries."""
    if len(scrapes) < 2:
        checked.expect(False, f"only {len(scrapes)} scrapes")
        return
    first, last = scrapes[0].samples, scrapes[-1].samples

    def rise(name: str, label: str, value: str) -> float:
        key = (name, frozenset({(label, value)}))
        return last.get(key, 0.0) - first.get(key, 0.0)

    for kind, count in expected.items():
        if "-" in kind:
            got = rise("booking_refusals_total", "type", kind)
        else:
            got = rise("booking_outcomes_total", "outcome", kind)
        checked.expect(got == count, f"metrics: {kind} rose by {got:g}, {count} answered")
    promoted = rise("booking_outcomes_total", "outcome", "promoted")
    checked.expect(promoted == answers["cancelled"], f"metrics: {promoted:g} promoted")
    delivered = rise("booking_webhook_deliveries", "result", "delivered")
    checked.expect(delivered == entries, f"metrics: {delivered:g} delivered of {entries}")


def main(argv: list[str] | None = None) -> int:
    """The scenario alone, on a scratch site of its own, and its picture."""
    from . import dashboard_plot
    from .cpu import CpuMeter
    from .server import DEFAULT_URL, Database
    from .settings import FULL, QUICK

    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the quick run's sizes")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    parser.add_argument("--url", default=os.environ.get("BENCH_MYSQL_URL", DEFAULT_URL))
    parser.add_argument("--output", type=Path, default=RESULTS, help="where dashboard.png goes")
    parser.add_argument("--interval", type=float, default=INTERVAL_S, help="s between scrapes")
    args = parser.parse_args(argv)
    scale = replace(QUICK if args.quick else FULL)
    db = Database(args.url).sibling("_dashboard")
    servers: list = []
    tmp = tempfile.mkdtemp(prefix="booking-bench-dashboard-")
    try:
        ctx = start_site(
            db, secrets.token_urlsafe(24), args.workers, tmp, scale,
            CpuMeter(lambda: [server.master_pid for server in servers]), {}, servers,
        )  # fmt: skip
        result = run(ctx, args.interval)
    finally:
        for server in servers:
            server.stop()
        db.drop()
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "dashboard.png"
    dashboard_plot.plot(result, path)
    say(f"wrote {path}")
    if result.checked.ok:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        say(f"logs kept in {tmp}: {result.checked.problems}")
    return 0 if result.checked.ok else 1


if __name__ == "__main__":
    sys.exit(main())
