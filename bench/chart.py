"""Draws bench/run's results: throughput per scenario and p99 at the fixed rate, per target.

    target/bench-venv/bin/python bench/chart.py target/bench/results.json out.png

Run by bench/run with the venv's Python (matplotlib is installed there).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

THROUGHPUT = ["h1-1token", "h1-1000tokens", "h2-1token", "h1-opaque-1token", "h1-session",
              "grpc-unary"]
FIXED = "h1-fixed-2000rps"
FIXED_SESSION = "h1-session-fixed-2000rps"  # the same load with a session cookie
FIXED_GRPC = "grpc-unary-fixed-2000rps"  # gRPC unary calls over HTTP/2 (the gRPC targets)


def main(raw_path: str, png_path: str) -> None:
    raw = json.load(open(raw_path))
    results = raw["results"]
    targets = list(dict.fromkeys(r["target"] for r in results))
    by = {(r["target"], r["scenario"]): r for r in results}
    # `direct` is an order of magnitude above the proxies: say its numbers instead of drawing
    # them, so the proxies' bars stay readable.
    proxies = [t for t in targets if t != "direct"]
    scenarios = [s for s in THROUGHPUT if any((t, s) in by for t in targets)]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / max(1, len(scenarios))
    for i, s in enumerate(scenarios):
        xs = [j + (i - (len(scenarios) - 1) / 2) * width for j in range(len(proxies))]
        ys = [by[(t, s)]["rps"] if (t, s) in by else 0 for t in proxies]
        bars = ax1.bar(xs, ys, width, label=s)
        ax1.bar_label(bars, labels=[f"{y / 1000:.1f}k" if y else "" for y in ys], fontsize=7)
    ax1.set_xticks(range(len(proxies)), proxies)
    ax1.set_ylabel("requests/s (higher is better)")
    ax1.set_title("Throughput, closed loop, one proxy core")
    ax1.legend(fontsize=8)
    if "direct" in targets:
        ceiling = ", ".join(
            f"{s} {by[('direct', s)]['rps'] / 1000:.0f}k" for s in scenarios if ("direct", s) in by
        )
        ax1.set_xlabel(f"direct (no proxy, the ceiling): {ceiling} req/s", fontsize=8)

    fixed = [by.get((t, FIXED)) or by.get((t, FIXED_SESSION)) or by.get((t, FIXED_GRPC))
             for t in targets]
    p99 = [r["p99_ms"] if r and r["p99_ms"] is not None else 0 for r in fixed]
    p50 = [r["p50_ms"] if r and r["p50_ms"] is not None else 0 for r in fixed]
    xs = range(len(targets))
    bars = ax2.bar([x + 0.2 for x in xs], p99, 0.4, label="p99", color="tab:red")
    ax2.bar([x - 0.2 for x in xs], p50, 0.4, label="p50", color="tab:gray")
    ax2.bar_label(bars, labels=[f"{v:.2f}" if v else "" for v in p99], fontsize=7)
    ax2.set_xticks(list(xs), targets)
    ax2.set_ylabel("ms (lower is better)")
    ax2.set_title("Latency at a fixed 2,000 req/s (HTTP/1.1; *-grpc: gRPC)")
    ax2.legend(fontsize=8)

    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelsize=8, rotation=25)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.grid(axis="y", alpha=0.3)
    meta, machine = raw["meta"], raw["machine"]
    fig.suptitle(
        f"Gatehouse load benchmark, {meta['date']}, {machine['host']} "
        f"({machine['nproc']} CPUs, {meta['mode']})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
