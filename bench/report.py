"""The results: a table on stdout, latest.json, latest.md, latest.png."""

import json
import os
from pathlib import Path

from .plot import plot

COLUMNS = ("scenario", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "invariants")
CPU_COLUMNS = (
    "scenario",
    "wall s",
    "client",
    "gunicorn",
    "mariadbd",
    "others",
    "unattributed",
    "machine busy",
    "gunicorn ms/req",
    "mariadbd ms/req",
)
BATCH_COLUMNS = (
    "scenario",
    "batches",
    "changes",
    "mean size",
    "p99 size",
    "max size",
    "rerun",
    "failed",
    "hold p50 ms",
    "hold p99 ms",
    "workers",
)


CPU_NOTE = (
    "CPU over each measured stretch, in % of one core (client: the aiohttp load generator,"
    " or wrk in the rows named wrk, or the direct-transaction processes, and the webhook"
    " receiver; gunicorn: the webhook"
    " worker too, in its row; others: other processes on the machine; unattributed: busy"
    " time charged to no process, e.g. interrupts; ms/req: CPU milliseconds per request, or"
    " per transaction for the direct rows):"
)
BATCH_NOTE = (
    "Group-commit batches the servers logged during each measured stretch (committed ones;"
    " changes: requests answered from them; rerun: batches that ran their changes again one"
    " by one; failed: batches answered with 503; hold: lock had to COMMIT; workers: processes"
    " that led batches; the growth cancel and re-book rows share one stretch):"
)
WEBHOOK_COLUMNS = (
    "scenario",
    "entries",
    "delivered",
    "in run /s",
    "overall /s",
    "drain s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "failed",
    "passes failed",
    "worker ms/entry",
    "receiver ms/entry",
)
WEBHOOK_NOTE = (
    "Webhook delivery by one worker to a loopback receiver (entries: the event's journal"
    " entries; in run /s: deliveries received while the bookings ran, per second; overall /s:"
    " all of them from the first booking sent to the last receipt; drain: last receipt after"
    " the last booking answer; p50..max: commit (the entry's timestamp, MariaDB's clock) to"
    " receipt; failed: attempts not answered 2xx; passes failed: worker passes that raised,"
    " e.g. on a deadlock, each followed by a poll interval's wait; worker ms/entry: its CPU;"
    " receiver ms/entry: the receiver's thread, in the load generator's process):"
)


def _invariants(value) -> str:
    return "n/a" if value is None else ("OK" if value else "FAILED")


def table_rows(results: dict) -> list[tuple]:
    return [
        (
            r["scenario"],
            f"{r['requests']:,}",
            f"{r['rps']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p90_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            str(r["errors"]),
            _invariants(r["invariants_ok"]),
        )
        for r in results["rows"]
    ]


def cpu_rows(results: dict) -> list[tuple]:
    rows = []
    for r in results["rows"]:
        cpu = r["cpu"]
        rows.append(
            (
                r["scenario"],
                f"{cpu['wall_s']:.1f}",
                *(
                    f"{cpu[key]:.0f}%"
                    for key in (
                        "client_pct",
                        "gunicorn_pct",
                        "mariadbd_pct",
                        "others_pct",
                        "unattributed_pct",
                    )
                ),
                f"{cpu['machine_busy_pct']:.0f}% of {cpu['machine_capacity_pct']}%",
                *(_num(cpu.get(f"{group}_ms_per_req"), 2) for group in ("gunicorn", "mariadbd")),
            )
        )
    return rows


def _num(value, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def batch_rows(results: dict) -> list[tuple]:
    """Rows that talked to a server; the direct ones have no batches to show."""
    rows = []
    for r in results["rows"]:
        b = r.get("batches")
        if b is None:
            continue
        rows.append(
            (
                r["scenario"],
                f"{b['batches']:,}",
                f"{b['changes']:,}",
                _num(b["mean_size"], 1),
                _num(b["p99_size"]),
                _num(b["max_size"]),
                str(b["rerun"]),
                str(b["failed"]),
                _num(b["hold_p50_ms"], 1),
                _num(b["hold_p99_ms"], 1),
                str(b["processes"]) if b["batches"] else "-",
            )
        )
    return rows


def webhook_rows(results: dict) -> list[tuple]:
    rows = []
    for r in results["rows"]:
        w = r.get("webhook")
        if w is None:
            continue
        rows.append(
            (
                r["scenario"],
                f"{w['entries']:,}",
                f"{w['delivered']:,}",
                _num(w["in_run_per_s"]),
                _num(w["overall_per_s"]),
                f"{w['drain_s']:.2f}",
                *(_num(w[key], 1) for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
                str(w["failed_attempts"]),
                str(w["failed_passes"]),
                _num(w["worker_cpu_ms_per_entry"], 2),
                _num(w.get("receiver_cpu_ms_per_entry"), 2),
            )
        )
    return rows


def _webhook_text(results: dict) -> list[str]:
    rows = webhook_rows(results)
    return ["", WEBHOOK_NOTE, _text_table(WEBHOOK_COLUMNS, rows)] if rows else []


def _webhook_md(results: dict) -> list[str]:
    rows = webhook_rows(results)
    return ["", WEBHOOK_NOTE, "", _md_table(WEBHOOK_COLUMNS, rows)] if rows else []


def _text_table(columns: tuple, rows: list[tuple]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows, strict=True)]

    def line(cells) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, rows)])


def _md_table(columns: tuple, rows: list[tuple]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(map(str, r)) + " |" for r in rows)])


def ratio_lines(results: dict) -> list[str]:
    lines = []
    for item in results["ratios"]:
        target = f"  (target {item['target']})" if item.get("target") else ""
        verdict = ""
        if item.get("met") is not None:
            verdict = "  met" if item["met"] else "  NOT met"
        value = "n/a" if item["value"] is None else f"{item['value']:.2f}"
        note = f"  [{item['note']}]" if item.get("note") else ""
        lines.append(f"{item['name']}: {value}{target}{verdict}{note}")
    return lines


def contention_lines(results: dict, threshold: float = 20.0) -> list[str]:
    """A warning when other processes took a noticeable share of the cores."""
    busy = [r for r in results["rows"] if r["cpu"].get("others_pct", 0) >= threshold]
    if not busy:
        return []
    worst = max(busy, key=lambda r: r["cpu"]["others_pct"])
    names = ", ".join(worst["cpu"].get("busiest_others", {})) or "unknown"
    return [
        f"warning: other processes used >= {threshold:.0f}% of a core during {len(busy)} of"
        f" {len(results['rows'])} measured stretches (up to {worst['cpu']['others_pct']:.0f}%"
        f" in '{worst['scenario']}': {names}); those figures are lower than on a quiet machine"
    ]


def machine_lines(results: dict) -> list[str]:
    m, c = results["machine"], results["config"]
    source = results.get("source") or {}
    code = f"booking/ at {source.get('commit') or 'unknown commit'}"
    if source.get("booking_changed"):
        code += " plus uncommitted changes"
    return [
        f"date: {results['date']}   run time: {results['total_s']:.0f} s ({results['mode']} run),"
        f" {code}",
        f"machine: {m['nproc']} cores, {m['cpu_model']}, {m['memory_gib']} GiB,"
        f" load average at start {m['loadavg_start']}",
        f"MariaDB {m['mariadb_version']} (innodb_flush_log_at_trx_commit="
        f"{m['mariadb'].get('innodb_flush_log_at_trx_commit')},"
        f" innodb_buffer_pool_size={m['mariadb'].get('innodb_buffer_pool_size')}),"
        f" Python {m['python']}, {m['kernel']}",
        f"gunicorn: {c['workers']} workers x {c.get('threads', '?')} threads (gthread,"
        f" WEB_CONCURRENCY={c['workers']}, GUNICORN_THREADS={c.get('threads', '?')},"
        f" worker_connections={c.get('worker_connections', '?')}), LOG_LEVEL={c['log_level']}"
        f" (JSON lines to a file and stderr), RATE_LIMIT={c['rate_limit']};"
        f" load generator: aiohttp, {c['concurrency']} in flight"
        f" ({c['growth_concurrency']} for growth), one process"
        + (
            "; the rows named wrk: wrk on a server of their own with the rate limiter on"
            " (see the wrk line above)"
            if any(r.get("client") == "wrk" for r in results["rows"])
            else ""
        ),
    ]


def text(results: dict) -> str:
    parts = [
        _text_table(COLUMNS, table_rows(results)),
        "",
        CPU_NOTE,
        _text_table(CPU_COLUMNS, cpu_rows(results)),
        "",
        BATCH_NOTE,
        _text_table(BATCH_COLUMNS, batch_rows(results)),
        *_webhook_text(results),
        "",
        *ratio_lines(results),
        *wrk_lines(results),
        *beside_lines(results),
        *party_lines(results),
        *hold_lines(results),
        *opening_lines(results),
        *retry_lines(results),
        *warmup_lines(results),
        *contention_lines(results),
        "",
        *machine_lines(results),
    ]
    return "\n".join(parts)


def retry_lines(results: dict) -> list[str]:
    """Row-lock reruns on error 1213 (cluster conflicts), per scenario that counted them."""
    return [
        f"{row['scenario']}: {row['retries_1213']['total']} batch retries on error 1213"
        f" (per host {row['retries_1213']['per_host']})"
        for row in results["rows"]
        if row.get("retries_1213")
    ]


def _latency(row: dict) -> str:
    return f"p50 {_num(row.get('p50_ms'), 1)} ms, p99 {_num(row.get('p99_ms'), 1)} ms"


def _cpu(row: dict) -> str:
    cpu = row.get("cpu") or {}
    return (
        f"{_num(cpu.get('gunicorn_ms_per_req'), 2)} ms workers +"
        f" {_num(cpu.get('mariadbd_ms_per_req'), 2)} ms MariaDB"
    )


def wrk_lines(results: dict) -> list[str]:
    """wrk's booking against its health checks (wrk.py), and beside it the same figures from
    the aiohttp client's rows of this run, each figure named by the client that gave it."""
    rows = {r["scenario"]: r for r in results["rows"]}
    lines = []
    for r in results["rows"]:
        c = r.get("wrk_compare")
        if not isinstance(c, dict):
            continue
        healthz = [x for x in results["rows"] if x.get("client") == "wrk" and x is not r]
        h, b = c["healthz_ms_per_req"], c["book_ms_per_req"]
        lines.append(
            f"wrk ({c['wrk']}; -t{c['threads']} -c{c['connections']} -d{c['seconds']}s"
            f" --latency after {c['warmup_s']} s of warm-up, {c['script']} for the booking;"
            f" a server of its own, the same gunicorn settings, RATE_LIMIT={c['rate_limit']}"
            f" on {c['storage']}): booking {c['book_rps']:,.0f} req/s ({_latency(r)}) against"
            f" healthz {c['healthz_rps_mean']:,.0f} req/s (mean of"
            f" {' and '.join(f'{x:,.0f}' for x in c['healthz_rps'])};"
            f" {'; '.join(_latency(x) for x in healthz)}): {_num(c['rps_ratio'], 2)} x;"
            f" CPU per request: booking {b['gunicorn']:.2f} ms workers + {b['mariadbd']:.2f} ms"
            f" MariaDB = {b['server']:.2f} ms, health check {h['gunicorn']:.2f} +"
            f" {h['mariadbd']:.2f} = {h['server']:.2f} ms: {_num(c['cpu_ratio'], 2)} x; wrk"
            f" itself {b['client']:.2f} ms per booking, {h['client']:.2f} ms per health check"
        )
        hot, ceiling = rows.get("hot event"), rows.get("healthz (HTTP ceiling)")
        if hot and ceiling and ceiling["rps"]:
            cpu_hot, cpu_ceiling = hot.get("cpu") or {}, ceiling.get("cpu") or {}
            server = [
                (cpu.get("gunicorn_ms_per_req") or 0) + (cpu.get("mariadbd_ms_per_req") or 0)
                for cpu in (cpu_hot, cpu_ceiling)
            ]
            lines.append(
                f"aiohttp client, same run (RATE_LIMIT off, {hot['requests']:,} users on"
                f" {hot.get('outcome', {}).get('booked', 0):,} tickets): hot event"
                f" {hot['rps']:,.0f} req/s ({_latency(hot)}) against healthz"
                f" {ceiling['rps']:,.0f} req/s ({_latency(ceiling)}):"
                f" {hot['rps'] / ceiling['rps']:.2f} x; CPU per request: booking {_cpu(hot)},"
                f" health check {_cpu(ceiling)}:"
                f" {_num(server[0] / server[1] if server[1] else None, 2)} x"
            )
    return lines


def beside_lines(results: dict) -> list[str]:
    """The hot event with the webhook worker delivering against the same burst without it,
    side by side (webhooks.side_by_side)."""
    lines = []
    for r in results["rows"]:
        beside = (r.get("webhook") or {}).get("beside")
        if not isinstance(beside, dict):
            continue
        w = r["webhook"]
        lines.append(
            f"{r['scenario']} ({beside['client']} client): {beside['with_rps']:,.0f} req/s"
            f" ({_latency(r)}) with the worker delivering every entry against"
            f" {beside['without_rps_mean']:,.0f} req/s without it (mean of"
            f" {' and '.join(f'{x:,.0f}' for x in beside['without_rps'])}, just before and"
            f" after): {_num(beside['ratio'], 2)} x; the worker used"
            f" {_num(w['worker_cpu_ms_per_entry'], 2)} ms CPU per delivered entry, the receiver"
            f" (in the client's process) {_num(w.get('receiver_cpu_ms_per_entry'), 2)} ms"
        )
    return lines


def party_lines(results: dict) -> list[str]:
    """What the parties' rows booked: their answers say more than req/s."""
    lines = []
    for r in results["rows"]:
        o = r.get("outcome")
        if not isinstance(o, dict) or "asked_tickets" not in o:
            continue
        lines.append(
            f"{r['scenario']}: {r['requests']:,} parties asked for {o['asked_tickets']:,} tickets"
            f" ({r['tickets_per_s']:,.0f} tickets/s); {o['booked']:,} parties booked"
            f" {o['booked_tickets']:,} tickets, {o['waitlisted']:,} wait for"
            f" {o['waiting_tickets']:,}, {o['held_back']} held back for a blocking party,"
            f" {o['passed_over']:,} overtakes counted"
        )
    for label, size in (results.get("growth_parties") or {}).items():
        c = size.get("cycles") if isinstance(size, dict) else None
        if c:
            lines.append(
                f"growth, parties, {label} ({size['sizes']['waiting']:,} waiting): {c['cancels']}"
                f" cancels (warm-up included) freed {c['freed_tickets']:,} tickets:"
                f" {c['promoted']} parties promoted ({c['promoted_tickets']:,} tickets),"
                f" {c['rebooked_at_once']} re-booked at once ({c['rebooked_at_once_tickets']}),"
                f" {c['free_at_end']} free at the end"
            )
    return lines


def hold_lines(results: dict) -> list[str]:
    """What the checkout holds' rows did: purchases (held, then claimed) per second, beside
    the hot event's bookings per second."""
    rows = {r["scenario"]: r for r in results["rows"]}
    hot = rows.get("hot event")
    lines = []
    for r in results["rows"]:
        p = r.get("purchases")
        booked = rows.get(r["scenario"].removesuffix(": claim") + ": book")
        if not isinstance(p, dict) or booked is None:
            continue
        line = (
            f"{r['scenario'].removesuffix(': claim')}: {booked['requests']:,} bookings,"
            f" {booked['outcome']['held']:,} held and {booked['outcome']['waitlisted']:,}"
            f" waitlisted; {p['claimed']:,} of the {p['held']:,} held claimed: {p['claimed']:,}"
            f" purchases in {p['wall_s']:.2f} s of book + claim ({p['per_s']:,.0f}/s)"
        )
        if hot and hot.get("outcome"):
            per_s = hot["outcome"]["booked"] / hot["wall_s"] if hot["wall_s"] else 0
            line += (
                f"; the hot event booked {hot['outcome']['booked']:,} in {hot['wall_s']:.2f} s"
                f" ({per_s:,.0f}/s)"
            )
        lines.append(line)
    return lines


def opening_lines(results: dict) -> list[str]:
    """The openings of a scheduled on-sale: how long, what they served, and what the
    bookings sent meanwhile waited (opening.py)."""
    lines = []
    for r in results["rows"]:
        o = r.get("opening")
        if not isinstance(o, dict):
            continue
        name = r["scenario"].removesuffix(": PATCH salesOpen true")
        line = (
            f"{name}: {o['queued_parties']:,} parties ({o['queued_tickets']:,} tickets) for"
            f" {o['total_tickets']:,} tickets opened by PATCH in {o['patch_ms'] / 1000:.2f} s"
            f" ({_num(o['parties_per_s'])} parties/s); its batch held the lock"
            f" {_num(o['hold_ms'])} ms (waited {_num(o['wait_ms'], 1)} ms); {o['booked']:,}"
            f" booked, {o['held']:,} held, {o['waitlisted']:,} waitlisted; booked parties'"
            f" mean arrival index {o['mean_arrival_z']} standard errors from the middle"
        )
        same, other = o["same_event"], o["other_event"]
        for read in o.get("reads") or ():
            line += (
                f"; GET {read['path']} sent {read['sent_after_s']} s into it took"
                f" {read['ms']:,.0f} ms (queueing: {read['queueing']})"
            )
        if other.get("sent"):
            line += (
                f"; another event: {other['sent_during']} bookings sent during the opening,"
                f" {other['answered_during']} answered before it ended"
                f" (statuses {other['statuses']})"
            )
            for phase, label in (
                ("before_same", "before any booking of the opening's event"),
                ("after_same", "after"),
            ):
                groups = [
                    f"{g['count']} by {where}: {g['answered_during']} answered during it, p50"
                    f" {_num(g['p50_ms'])} ms, max {_num(g['max_ms'])} ms"
                    for key, where in (
                        ("other_processes", "the other worker"),
                        ("opening_process", "the opening's worker"),
                    )
                    if (g := other[f"{phase}_{key}"])["count"]
                ]
                if groups:
                    line += f"; {label}: " + ", ".join(groups)
        if same.get("sent"):
            line += (
                f"; {same['sent']} bookings of the same event sent {same['sent_after_s']} s"
                f" into it waited p50 {_num(same['p50_ms'])} ms, max {_num(same['max_ms'])} ms"
                f" (statuses {same['statuses']}), the first answered"
                f" {same['first_answer_after_patch_ms']:+,.0f} ms after the PATCH's answer"
            )
        lines.append(line)
    return lines


def warmup_lines(results: dict) -> list[str]:
    lines = []
    growths = [("", results.get("growth")), ("parties, ", results.get("growth_parties"))]
    for kind, growth in growths:
        for label, size in (growth or {}).items():
            if not isinstance(size, dict) or "warmup" not in size:
                continue
            lines.append(_warmup_line(kind + label, size))
    return lines


def _warmup_line(label: str, size: dict) -> str:
    w = size["warmup"]
    return (
        f"growth warm-up, {label} ({size['sizes']['waiting']:,} waiting): {w['requests']}"
        f" requests in {w['wall_s']} s until {w['workers_loaded']}/{w['workers']} workers"
        f" had loaded the waiting list; p50 {w['p50_ms']} ms, max {w['max_ms']} ms"
        f" (not in the figures above)"
    )


def markdown(results: dict) -> str:
    warm_lines = [f"- {line}" for line in warmup_lines(results)]
    return "\n".join(
        [
            f"### Benchmark ({results['date']})",
            "",
            "`make bench`: real gunicorn + MariaDB on loopback, invariants checked after each"
            " scenario through SQL and the API.",
            "",
            _md_table(COLUMNS, table_rows(results)),
            "",
            CPU_NOTE,
            "",
            _md_table(CPU_COLUMNS, cpu_rows(results)),
            "",
            BATCH_NOTE,
            "",
            _md_table(BATCH_COLUMNS, batch_rows(results)),
            *_webhook_md(results),
            "",
            *(f"- {line}" for line in ratio_lines(results)),
            *(f"- {line}" for line in wrk_lines(results)),
            *(f"- {line}" for line in beside_lines(results)),
            *(f"- {line}" for line in party_lines(results)),
            *(f"- {line}" for line in hold_lines(results)),
            *(f"- {line}" for line in opening_lines(results)),
            *(f"- {line}" for line in retry_lines(results)),
            *warm_lines,
            *(f"- {line}" for line in contention_lines(results)),
            "",
            *(f"- {line}" for line in machine_lines(results)),
            "",
        ]
    )


def write(results: dict, directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / "latest.json",
        "md": directory / "latest.md",
        "png": directory / "latest.png",
    }
    _atomic(paths["json"], json.dumps(results, indent=2, sort_keys=False) + "\n")
    _atomic(paths["md"], markdown(results))
    plot(results, paths["png"])
    return paths


def _atomic(path: Path, content: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)
