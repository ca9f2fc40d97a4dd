"""The benchmark's report: a markdown page, the raw JSON and a PNG plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks.peers.workloads import BY_KEY, FRESH

MB = 1024 * 1024
METHOD = """\
Method. Each engine runs in its own process with the same thread count: DuckDB
(own in-memory tables, ENUM columns for low-cardinality strings, events in time
order, `PRAGMA threads`), Polars (in-memory DataFrames, Enum columns, `ts`
flagged sorted and windows cut by binary search, `POLARS_MAX_THREADS`), ours
(an on-disk store ingested from the same Parquet files and opened memory-mapped,
segments compiled once, `NUMBA_NUM_THREADS`).
All use a dense integer contact key; loading is not timed with the queries.
A run is the whole answer a user gets: the audience's contact ids as an Arrow
table (DuckDB and Polars join their keys back to the ids; ours is
`Audience.to_arrow()`, a dictionary array over the store's contact ids).
Two shapes of shop: `shop` (one contact per 60 events, string ids, event ids)
and `wide` (one contact per 4 events, int64 ids, no event id column).
Each workload: one warm-up run (reported as *first*), more untimed runs until
a second has passed, then the timed runs; the table gives the median and
[min-max]. Python's garbage collector runs before
each timed run, so no run pays a collector pause; the objects alive after the
warm-up (the data, plans, loaded code) are frozen first (`gc.freeze`), as a
long-running service would, so that collection walks only what the runs made.
Every engine's audience (contact ids) is checked equal to DuckDB's for every
workload before anything is written.
Events/s is the store's events divided by the median time. Peak memory is
the process's VmHWM during the workload's runs minus its RSS before them
(reset with /proc/self/clear_refs), so native allocations count. The floor
is the bytes the workload must read (its window's events, in our encoding)
divided by the memory bandwidth measured in the same run. *Data MB* is the
engine's own count of its tables (DuckDB's in-memory table buffers, Polars'
estimated size, our snapshot's arrays); *RSS after load* also holds what the
allocators kept from loading."""

INGEST_NOTE = (
    "`duckdb_ctas`: plain `CREATE TABLE AS SELECT * FROM read_parquet`; "
    "`duckdb_load`: the configuration queried above (ENUMs, sorted, keyed)."
)


def _ms(s: float) -> str:
    ms = s * 1000
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _cell(w: dict[str, Any]) -> str:
    return f"{_ms(w['median_s'])} [{_ms(min(w['times']))}-{_ms(max(w['times']))}]"


def _by_workload(size: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for engine, res in size["engines"].items():
        for w in res["workloads"]:
            out.setdefault(w["workload"], {})[engine] = w
    return out


def _ratio_value(row: dict[str, dict[str, Any]]) -> float | None:
    """Our median over the best peer's (None: no ours or no peer)."""
    peers = [r["median_s"] for e, r in row.items() if e != "ours"]
    if "ours" not in row or not peers:
        return None
    return float(row["ours"]["median_s"] / min(peers))


def _ratio(row: dict[str, dict[str, Any]]) -> str:
    r = _ratio_value(row)
    return "n/a" if r is None else f"{r:.2f}x"


def _verdict(size: dict[str, Any]) -> list[str]:
    """The targets' figures for one size: the geometric mean and the worst of
    our time over the best peer's, and our time over the floor at worst."""
    rows = _by_workload(size)
    ratios = {k: r for k, row in rows.items() if (r := _ratio_value(row)) is not None}
    floors = {
        k: row["ours"]["median_s"] / size["bounds"][k]["seconds"]
        for k, row in rows.items()
        if "ours" in row and size["bounds"].get(k, {}).get("seconds")
    }
    if not ratios:
        return []
    geo = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
    worst = max(ratios, key=lambda k: ratios[k])
    line = (
        f"Ours over the best peer: geometric mean {geo:.2f} ({1 / geo:.1f}x faster); "
        f"the closest is {worst} at {ratios[worst]:.2f}x."
    )
    if floors:
        far = max(floors, key=lambda k: floors[k])
        line += f" Ours over the floor at most {floors[far]:.1f}x ({far})."
    return ["", line]


def _size_section(size: dict[str, Any], engines: list[str]) -> list[str]:
    n = size["n_events"]
    lines = [f"## {size['label']} events ({n:,} events, {size['n_contacts']:,} contacts)", ""]
    rows = _by_workload(size)
    head = ["workload", "audience", *[f"{e} ms" for e in engines], "ours / best peer", "floor ms"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in rows.items():
        audience = next(iter(row.values()))["audience"]
        cells = [_cell(row[e]) if e in row else "n/a" for e in engines]
        floor = _ms(size["bounds"][key]["seconds"])
        lines.append(
            f"| {key} | {audience:,} | " + " | ".join(cells) + f" | {_ratio(row)} | {floor} |"
        )
    lines += _verdict(size)
    lines += [
        "",
        "Throughput (million events/s at the median), the memory the runs added"
        " (MB), and the process's whole resident memory at its peak during the runs"
        " (RSS MB: the loaded data, or the pages of our memory-mapped store the"
        " runs touched, plus the runs' own):",
        "",
    ]
    head = [
        "workload",
        *[f"{e} Mev/s" for e in engines],
        *[f"{e} MB" for e in engines],
        *[f"{e} RSS MB" for e in engines],
    ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in rows.items():
        tput = [f"{n / row[e]['median_s'] / 1e6:.0f}" if e in row else "n/a" for e in engines]
        mem = [f"{row[e]['peak_bytes'] / MB:.0f}" if e in row else "n/a" for e in engines]
        rss = [
            f"{row[e]['peak_rss_bytes'] / MB:.0f}" if "peak_rss_bytes" in row.get(e, {}) else "n/a"
            for e in engines
        ]
        lines.append(f"| {key} | " + " | ".join(tput + mem + rss) + " |")
    lines += ["", "Load and first evaluations (s; MB):", ""]
    lines += [
        "| engine | load s | data MB | RSS after load MB | load peak MB"
        " | first run of red_shoes ms | never-seen text, warm process ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in engines:
        res = size["engines"].get(e)
        if res is None:
            continue
        first = next((w["first_s"] for w in res["workloads"] if w["workload"] == "red_shoes"), None)
        lines.append(
            f"| {e} | {res['load_s']:.2f} | {res['data_bytes'] / MB:.0f} | "
            f"{res['rss_bytes'] / MB:.0f} | "
            f"{res['load_peak_bytes'] / MB:.0f} | {_ms(first) if first is not None else 'n/a'} | "
            f"{_ms(res['fresh_warm_s'])} |"
        )
    if "ours" in size["engines"]:
        comp = {w["workload"]: w["prepare_s"] for w in size["engines"]["ours"]["workloads"]}
        lines += [
            "",
            "Our parse + check + compile per workload (ms, not in the times above): "
            + ", ".join(f"{k} {_ms(v)}" for k, v in comp.items()),
        ]
    lines.append("")
    if size.get("ingest"):
        lines += ["Ingest from the same Parquet files into a durable on-disk store:", ""]
        lines += ["| ingest | seconds | events/s | peak MB |", "|---|---|---|---|"]
        for kind, r in size["ingest"].items():
            lines.append(
                f"| {kind} | {r['seconds']:.2f} | {r['events'] / r['seconds'] / 1e6:.2f}M "
                f"| {r['peak_bytes'] / MB:.0f} |"
            )
        lines += ["", INGEST_NOTE, ""]
    if size.get("cold"):
        lines += [
            f"Never-seen text (`{FRESH.key}`) in a new process (open the on-disk store, "
            "evaluate once; our package's bytecode compiled beforehand, as a user's "
            "install has it):",
            "",
        ]
        lines += ["| engine | process wall s | open s | first evaluation ms |", "|---|---|---|---|"]
        for e, r in size["cold"].items():
            lines.append(
                f"| {e} | {r['wall_s']:.2f} | {r['open_s']:.2f} | {_ms(r['first_eval_s'])} |"
            )
        lines.append("")
    return lines


def engines_of(results: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    for size in results["sizes"]:
        seen += [e for e in size["engines"] if e not in seen]
    return seen


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    engines = engines_of(results)
    lines = [
        "# Peer benchmark: ours, DuckDB, Polars",
        "",
        f"{meta['date']} on {meta['machine']}; Python {meta['python']}; "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        f"Threads {meta['threads']}, {meta['repeat']} timed runs after a warm-up, "
        f"seed {meta['seed']}, now = {meta['now']}, memory bandwidth "
        f"{meta['bandwidth_Bps'] / 1e9:.1f} GB/s. Our engine: {meta['ours']}.",
        "",
        METHOD,
        "",
        "Workloads:",
        "",
    ]
    keys = list(_by_workload(results["sizes"][0])) if results["sizes"] else []
    for key in keys:
        dsl = " ".join(BY_KEY[key].dsl.split())
        lines.append(f"- `{key}`: {BY_KEY[key].title}: `{dsl}`")
    lines.append("")
    for size in results["sizes"]:
        lines += _size_section(size, engines)
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = engines_of(results)
    keys = list(_by_workload(results["sizes"][0])) if results["sizes"] else []
    cols = 5
    rows = max(1, -(-len(keys) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    shapes = sorted({size.get("shape", "shop") for size in results["sizes"]})
    for ax, key in zip(axes.flat, keys, strict=False):
        for e in engines:
            for shape in shapes:
                xs, ys = [], []
                for size in results["sizes"]:
                    w = _by_workload(size).get(key, {}).get(e)
                    if w is not None and size.get("shape", "shop") == shape:
                        xs.append(size["n_events"])
                        ys.append(size["n_events"] / w["median_s"])
                label = e if shape == "shop" else f"{e} ({shape})"
                style = "-" if shape == "shop" else "--"
                ax.plot(xs, ys, style, marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    axes.flat[0].set_ylabel("events / s")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Events per second by store size (higher is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js, png = out_dir / "peers.md", out_dir / "peers.json", out_dir / "peers.png"
    md.write_text(markdown(results), encoding="utf-8")
    js.write_text(json.dumps(results, indent=1), encoding="utf-8")
    plot(results, png)
    return [md, js, png]


def summary(results: dict[str, Any]) -> Table:
    """The medians at a glance, for the terminal."""
    engines = engines_of(results)
    table = Table(title="median ms (ours / best peer)")
    table.add_column("size")
    table.add_column("workload")
    for e in engines:
        table.add_column(e, justify="right")
    table.add_column("ratio", justify="right")
    for size in results["sizes"]:
        for key, row in _by_workload(size).items():
            cells = [_ms(row[e]["median_s"]) if e in row else "n/a" for e in engines]
            table.add_row(size["label"], key, *cells, _ratio(row))
    return table
