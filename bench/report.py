"""The results: a table on stdout, latest.json, latest.md, latest.png."""

import json
import os
from pathlib import Path

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
)


CPU_NOTE = (
    "CPU over each measured stretch, in % of one core (client: the aiohttp load generator,"
    " or the direct-transaction processes; others: other processes on the machine;"
    " unattributed: busy time charged to no process, e.g. interrupts):"
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
            )
        )
    return rows


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
        lines.append(f"{item['name']}: {value}{target}{verdict}")
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
        f"gunicorn: WEB_CONCURRENCY={c['workers']} sync workers, LOG_LEVEL={c['log_level']}"
        f" (JSON lines to a file and stderr), RATE_LIMIT={c['rate_limit']};"
        f" load generator: aiohttp, {c['concurrency']} in flight"
        f" ({c['growth_concurrency']} for growth), one process",
    ]


def text(results: dict) -> str:
    parts = [
        _text_table(COLUMNS, table_rows(results)),
        "",
        CPU_NOTE,
        _text_table(CPU_COLUMNS, cpu_rows(results)),
        "",
        *ratio_lines(results),
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
        f"{row['scenario']}: {row['retries_1213']['total']} retries on error 1213"
        f" (per host {row['retries_1213']['per_host']})"
        for row in results["rows"]
        if row.get("retries_1213")
    ]


def warmup_lines(results: dict) -> list[str]:
    lines = []
    for label, size in (results.get("growth") or {}).items():
        if not isinstance(size, dict) or "warmup" not in size:
            continue
        w = size["warmup"]
        lines.append(
            f"growth warm-up, {label} ({size['sizes']['waiting']:,} waiting): {w['requests']}"
            f" requests in {w['wall_s']} s until {w['workers_loaded']}/{w['workers']} workers"
            f" had loaded the waiting list; p50 {w['p50_ms']} ms, max {w['max_ms']} ms"
            f" (not in the figures above)"
        )
    return lines


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
            *(f"- {line}" for line in ratio_lines(results)),
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


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = results["rows"]
    names = [r["scenario"] for r in rows]
    fig = plt.figure(figsize=(15, 11), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.25, 1])
    ax_rps, ax_lat, ax_growth = (
        fig.add_subplot(grid[0, 0]),
        fig.add_subplot(grid[0, 1]),
        fig.add_subplot(grid[1, :]),
    )
    y = range(len(rows))
    colors = [
        "tab:gray"
        if "healthz" in n or n.startswith("direct")
        else "tab:olive"
        if n.startswith("growth")
        else "tab:blue"
        for n in names
    ]
    ax_rps.barh(y, [r["rps"] for r in rows], color=colors)
    ax_rps.set_yticks(list(y), names, fontsize=8)
    ax_rps.invert_yaxis()
    ax_rps.set_xlabel("requests (or transactions) per second")
    ax_rps.set_title("Throughput (grey: ceilings; growth runs at 8 in flight)")
    for i, r in enumerate(rows):
        ax_rps.text(r["rps"], i, f" {r['rps']:,.0f}", va="center", fontsize=7)

    height = 0.4
    ax_lat.barh([i - height / 2 for i in y], [r["p50_ms"] for r in rows], height, label="p50")
    ax_lat.barh([i + height / 2 for i in y], [r["p99_ms"] for r in rows], height, label="p99")
    ax_lat.set_yticks(list(y), [""] * len(rows))
    ax_lat.invert_yaxis()
    ax_lat.set_xscale("log")
    ax_lat.set_xlabel("latency, ms (log scale)")
    ax_lat.set_title("Latency per scenario")
    ax_lat.legend(loc="lower right")

    growth = results.get("growth")
    if growth:
        small, large = growth["small"], growth["large"]
        sizes = [small["sizes"]["waiting"], large["sizes"]["waiting"]]
        plotted = []
        for kind, label, marker, color in (
            ("cancel", "cancel + promote", "o", "tab:red"),
            ("rebook", "re-book (join line)", "s", "tab:green"),
            ("status", "status", "^", "tab:blue"),
        ):
            for pct, linestyle in (("p50_ms", "-"), ("p99_ms", "--")):
                values = [small[kind][pct], large[kind][pct]]
                plotted.extend(values)
                ax_growth.plot(
                    sizes,
                    values,
                    marker=marker,
                    linestyle=linestyle,
                    color=color,
                    label=f"{label} {pct[:3]}",
                )
                for x, v, side in zip(sizes, values, ("right", "left"), strict=True):
                    ax_growth.annotate(
                        f"{v:.1f}", (x, v), textcoords="offset points", ha=side, fontsize=7,
                        xytext=(-8 if side == "right" else 8, -3), color=color,
                    )  # fmt: skip
        ax_growth.set_xscale("log")
        ax_growth.set_yscale("log")
        ax_growth.minorticks_off()
        low, high = min(plotted) / 1.5, max(plotted) * 1.5
        nice = [m * 10**e for e in range(-1, 5) for m in (1, 2, 5)]
        ax_growth.set_yticks([t for t in nice if low <= t <= high])
        ax_growth.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax_growth.margins(x=0.15)
        ax_growth.set_xticks(
            sizes,
            [
                f"{small['sizes']['waiting']:,} waiting\n{small['sizes']['bookings']:,} booked",
                f"{large['sizes']['waiting']:,} waiting\n{large['sizes']['bookings']:,} booked",
            ],
        )
        ax_growth.set_ylabel("latency, ms (log scale)")
        concurrency = results["config"]["growth_concurrency"]
        ax_growth.set_title(f"Latency against event size ({concurrency} in flight)")
        ax_growth.legend(ncol=3, fontsize=8)
        ax_growth.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        f"Booking service benchmark, {results['date']}: {results['machine']['nproc']} cores,"
        f" WEB_CONCURRENCY={results['config']['workers']}, MariaDB"
        f" {results['machine']['mariadb_version']}"
    )
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, path)
