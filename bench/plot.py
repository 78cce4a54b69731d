"""latest.png: throughput, latency per scenario, and latency against event size."""

import os
from pathlib import Path


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
        lines = [
            (growth, "cancel", "cancel + promote", "o", "tab:red"),
            (growth, "rebook", "re-book (join line)", "s", "tab:green"),
            (growth, "status", "status", "^", "tab:blue"),
        ]
        if results.get("growth_parties"):
            lines.append(
                (
                    results["growth_parties"],
                    "cancel",
                    "cancel + promote, parties",
                    "D",
                    "tab:purple",
                )
            )
        for case, kind, label, marker, color in lines:
            for pct, linestyle in (("p50_ms", "-"), ("p99_ms", "--")):
                values = [case["small"][kind][pct], case["large"][kind][pct]]
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
    config = results["config"]
    fig.suptitle(
        f"Booking service benchmark, {results['date']}: {results['machine']['nproc']} cores,"
        f" gunicorn {config['workers']} workers x {config.get('threads', '?')} threads, MariaDB"
        f" {results['machine']['mariadb_version']}"
    )
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, path)
