"""The ratios printed after the tables, each checked against its target where it has one."""

# The hot event before group commit, from the table in docs/performance.md: commit f121e36,
# a full run (5,000 users, 1,000 tickets) with 4 sync workers on this 2-core machine.
BEFORE = {"commit": "f121e36", "hot_rps": 453, "hot_p99_ms": 183}


def ratio(
    name: str, numerator, denominator, target: str | None = None, note: str | None = None
) -> dict:
    """`note`: what the value was computed from, printed after it."""
    value = round(numerator / denominator, 3) if numerator and denominator else None
    met = None
    if target and value is not None:
        op, bound = target.split()
        met = value >= float(bound) if op == ">=" else value <= float(bound)
    found = {"name": name, "value": value, "target": target, "met": met}
    if note:
        found["note"] = note
    return found


def _against_healthz(rows: dict) -> list[dict]:
    healthz = rows["healthz"]["rps"]
    return [
        ratio(f"{label} / healthz throughput", rows[key]["rps"], healthz, ">= 0.5")
        for key, label in (
            ("hot", "hot-event booking"),
            ("many", "many-events booking"),
            ("storm", "cancel storm"),
        )
    ]


def _against_before(rows: dict, mode: str) -> list[dict]:
    """The hot event now against the same scenario before group commit."""
    # A quick run books 1,000 users, not 5,000: a hint, not the measurement.
    caveat = "" if mode == "full" else f" ({mode} run against a full one)"
    return [
        ratio(
            f"hot-event req/s / {BEFORE['hot_rps']} before group commit{caveat}",
            rows["hot"]["rps"],
            BEFORE["hot_rps"],
            ">= 2",
        ),
        ratio(
            f"hot-event p99 / {BEFORE['hot_p99_ms']} ms before group commit{caveat}",
            rows["hot"]["p99_ms"],
            BEFORE["hot_p99_ms"],
            "<= 1",
        ),
    ]


# What the ratios against the hot event need; a run with --only may lack them.
CORE = ("healthz", "hot", "many", "storm")


def ratios(
    rows: dict, growth: dict, mode: str = "full", party_growth: dict | None = None
) -> list[dict]:
    found = _targets(rows)
    found += _core(rows, mode) if all(key in rows for key in CORE) else []
    if growth:
        found += _growth(growth, "")
    if party_growth:
        found += _growth(party_growth, f", parties of 1-{party_growth['parties']}")
    return found + _openings(rows)


def _server_ms(row: dict) -> tuple[float, float] | None:
    cpu = row.get("cpu") or {}
    if cpu.get("gunicorn_ms_per_req") is None:
        return None
    return cpu["gunicorn_ms_per_req"], cpu["mariadbd_ms_per_req"]


def _targets(rows: dict) -> list[dict]:
    """Issue 23's targets, each with the client that measured it: booking against /healthz
    by wrk; CPU per booking against CPU per health check (workers + MariaDB) by wrk, and
    by the aiohttp client where its rows ran; the webhook worker's CPU per delivered entry;
    the hot event with the worker delivering against without it, side by side."""
    found = []
    book = rows.get("wrk book")
    if book and book.get("wrk_compare"):
        c = book["wrk_compare"]
        h, b = c["healthz_ms_per_req"], c["book_ms_per_req"]
        found.append(
            ratio(
                "wrk: booking >= 0.5 x healthz",
                c["book_rps"],
                c["healthz_rps_mean"],
                ">= 0.5",
                f"booking {c['book_rps']:,.0f} req/s / healthz {c['healthz_rps_mean']:,.0f}"
                f" req/s, the mean of {' and '.join(f'{x:,.0f}' for x in c['healthz_rps'])};"
                f" wrk -t{c['threads']} -c{c['connections']} -d{c['seconds']}s,"
                f" RATE_LIMIT={c['rate_limit']}",
            )
        )
        found.append(
            ratio(
                "CPU per booking <= 2 x CPU per health check (wrk)",
                b["server"],
                h["server"],
                "<= 2",
                f"booking {b['gunicorn']:.2f} ms workers + {b['mariadbd']:.2f} ms MariaDB,"
                f" health check {h['gunicorn']:.2f} + {h['mariadbd']:.2f} ms",
            )
        )
    if "healthz" in rows and "hot" in rows:
        h, b = _server_ms(rows["healthz"]), _server_ms(rows["hot"])
        if h and b:
            found.append(
                ratio(
                    "CPU per booking <= 2 x CPU per health check (aiohttp client, RATE_LIMIT off)",
                    sum(b),
                    sum(h),
                    "<= 2",
                    f"hot event {b[0]:.2f} ms workers + {b[1]:.2f} ms MariaDB, healthz"
                    f" {h[0]:.2f} + {h[1]:.2f} ms",
                )
            )
    for row in rows.values():
        w = row.get("webhook")
        if w and w.get("worker_cpu_ms_per_entry") is not None:
            found.append(
                ratio(
                    f"worker <= 0.3 ms CPU per delivered entry ({row['scenario']})",
                    w["worker_cpu_ms_per_entry"],
                    1,
                    "<= 0.3",
                    f"{w['delivered']:,} delivered of {w['entries']:,} entries",
                )
            )
    beside = (rows.get("hot webhook") or {}).get("webhook", {}).get("beside")
    if beside:
        found.append(
            ratio(
                "hot event with the worker delivering >= 0.9 x without",
                beside["with_rps"],
                beside["without_rps_mean"],
                ">= 0.9",
                f"{beside['with_rps']:,.0f} req/s / {beside['without_rps_mean']:,.0f}, the"
                f" mean of {' and '.join(f'{x:,.0f}' for x in beside['without_rps'])} just before"
                f" and after; {beside['client']} client, side by side",
            )
        )
    return found


def _openings(rows: dict) -> list[dict]:
    """The opening of a scheduled on-sale: the PATCH's seconds for the largest queue, in
    each lock mode (target: under 10 s for 100,000 queued parties)."""
    found = []
    for row in rows.values():
        opening = row.get("opening")
        if not opening or opening["queued_parties"] < 100_000:
            continue
        found.append(
            ratio(
                f"{row['scenario'].removesuffix(': PATCH salesOpen true')}: seconds the"
                " opening's PATCH took",
                opening["patch_ms"],
                1000,
                "<= 10",
            )
        )
    return found


def _core(rows: dict, mode: str) -> list[dict]:
    hot = rows["hot"]["rps"]
    found = [*_against_healthz(rows), *_against_before(rows, mode)]
    if "hot parties" in rows:
        found += _parties(rows)
    if "hot holds claim" in rows:
        found += _holds(rows)
    if "offer storm" in rows:
        # Informational: the same cancel storm, each ticket offered instead of booked.
        found.append(
            ratio(
                "cancel storm: offer mode / auto mode",
                rows["offer storm"]["rps"],
                rows["storm"]["rps"],
            )
        )
    if "hot webhook" in rows:
        # Informational: both runs write the journal, so this is what the worker's
        # sequencing and delivering cost the bookings (its CPU is the machine's too).
        found.append(
            ratio(
                "hot event: webhook + worker / without (webhook delivery cost;"
                " both write the journal)",
                rows["hot webhook"]["rps"],
                hot,
            )
        )
    if "hot row" in rows:
        found.append(
            ratio(
                "hot-event booking, row lock / healthz",
                rows["hot row"]["rps"],
                rows["healthz"]["rps"],
            )
        )
        found.append(ratio("hot event: row lock / table lock", rows["hot row"]["rps"], hot))
        found.append(
            ratio(
                "many events: row lock / table lock", rows["many row"]["rps"], rows["many"]["rps"]
            )
        )
    if "cluster hot" in rows:
        for key, label in (("hot", "hot event"), ("many", "many events")):
            found.append(
                ratio(
                    f"{label}: 3-node cluster / single MariaDB, row lock",
                    rows[f"cluster {key}"]["rps"],
                    rows[f"{key} row"]["rps"],
                )
            )
    for key, row in rows.items():
        if key.startswith("direct"):
            found.append(ratio(f"hot-event booking / {row['scenario']}", hot, row["rps"]))
    return found


def _parties(rows: dict) -> list[dict]:
    """Informational: the hot event with parties against parties of 1, per request and
    per ticket asked (a party asks for several)."""
    parties, hot = rows["hot parties"], rows["hot"]
    label = parties["scenario"].removeprefix("hot event, ")
    return [
        ratio(f"hot event: {label} / parties of 1, req/s", parties["rps"], hot["rps"]),
        ratio(
            f"hot event: {label} / parties of 1, tickets/s (tickets asked per second)",
            parties.get("tickets_per_s"),
            hot.get("tickets_per_s"),
        ),
    ]


def _holds(rows: dict) -> list[dict]:
    """Informational: the hot event with checkout holds against the instant one. A purchase
    is a held booking then claimed: the pairs over both stretches' time, against the hot
    event's booked answers over its time; and the book stretch alone, per request."""
    book, claimed, hot = rows["hot holds"], rows["hot holds claim"], rows["hot"]
    hot_booked = hot["outcome"]["booked"] / hot["wall_s"] if hot["wall_s"] else None
    return [
        ratio(
            "hot event, checkout holds: purchases/s (held + claimed pairs over book + claim"
            " time) / hot event's booked/s",
            claimed["purchases"]["per_s"],
            hot_booked,
        ),
        ratio("hot event, checkout holds: book req/s / hot event req/s", book["rps"], hot["rps"]),
    ]


def _growth(growth: dict, label: str) -> list[dict]:
    """Large against small: latency (target <= 1.5) and the cancel+promote throughput, the
    cancel storm with 100,000 parties waiting against 100 (target >= 0.8)."""
    small, large = growth["small"], growth["large"]
    found = [
        ratio(
            f"growth{label} cancel+promote req/s large/small",
            large["cancel"]["rps"],
            small["cancel"]["rps"],
            ">= 0.8",
        )
    ]
    for kind, name, target in (
        ("cancel", "cancel+promote", "<= 1.5"),
        ("status", "status", "<= 1.5"),
        ("rebook", "re-book (join line)", "<= 1.5"),
    ):
        for pct in ("p50_ms", "p99_ms"):
            found.append(
                ratio(
                    f"growth{label} {name} {pct[:3]} large/small",
                    large[kind][pct],
                    small[kind][pct],
                    target,
                )
            )
    return found
