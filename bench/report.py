"""The one results table, the targets (PASS/MISS per line, never an exit status), JSON and the chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

# Targets from the issue.
PG2_RATE = 8_000
PG2_CEILING_SHARE = 0.60
PG1_RATE = 5_000
SQLITE_RATE = 5_000
P99_MS = 250
RSS_MB = 300
GROWTH_RATIO = 0.8
QUERY_P95_MS = 50
TRIVY_SECONDS = 1.5


@dataclass(slots=True)
class Line:
    phase: str
    measure: str
    value: str = ""
    ratio: str = ""
    p50: str = ""
    tail: str = ""  # p99 for ingest, p95 for queries
    rss: str = ""
    target: str = ""
    result: str = ""
    note: str = ""


@dataclass(slots=True)
class Check:
    """One criterion of a line: a name for the MISS list and whether it holds."""

    name: str
    ok: bool


@dataclass(slots=True)
class Verdicts:
    passed: int = 0
    missed: int = 0
    missed_lines: list[str] = field(default_factory=list)

    def judge(self, line: Line, checks: list[Check]) -> None:
        if not checks:
            return
        misses = [check.name for check in checks if not check.ok]
        if misses:
            self.missed += 1
            self.missed_lines.append(f"{line.phase} {line.measure}")
            line.result = "MISS (" + ", ".join(misses) + ")"
        else:
            self.passed += 1
            line.result = "PASS"


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def build_lines(results: dict[str, Any]) -> tuple[list[Line], Verdicts]:
    lines: list[Line] = []
    verdicts = Verdicts()
    ceilings = results["ceiling"]
    for database, label in (("postgresql", "PostgreSQL COPY"), ("sqlite", "SQLite executemany")):
        c = ceilings.get(database)
        if c:
            lines.append(
                Line(
                    "ceiling",
                    label,
                    f"{_n(c['rate'])}/s",
                    "1.00",
                    note=f"{_n(c['rows'])} rows, one transaction",
                )
            )

    new_rates: dict[str, float] = {}
    for run in results["ingest"]:
        line = Line(
            f"ingest {run['label']}",
            run["pass"],
            f"{_n(run['rate'])}/s",
            f"{run['ratio']:.2f}",
            _ms(run["p50_ms"]),
            _ms(run["p99_ms"]),
            f"{run['rss_max_mb']:.0f} / {run['rss_sum_mb']:.0f}",
        )
        notes = [f"{_n(run['findings'])} findings"]
        if run["capped"]:
            notes.append(f"time cap: {_n(run['findings'])} of {_n(run['planned'])}")
        if run["errors"]:
            causes = ", ".join(error.split(":")[0] for error in run.get("server_errors", {}))
            notes.append(f"{run['errors']} failed requests" + (f" ({causes})" if causes else ""))
        if run.get("db_cpu_us"):
            notes.append(
                f"CPU/finding: API {run['api_cpu_us']:.0f} µs + PostgreSQL {run['db_cpu_us']:.0f} µs"
            )
        elif run.get("api_cpu_us"):
            notes.append(f"CPU/finding: API with SQLite {run['api_cpu_us']:.0f} µs")
        line.note = "; ".join(notes)
        checks = [
            Check(f"p99 > {P99_MS} ms", run["p99_ms"] <= P99_MS),
            Check(f"RSS > {RSS_MB} MB", run["rss_max_mb"] <= RSS_MB),
        ]
        targets = [f"p99 ≤ {P99_MS} ms", f"RSS ≤ {RSS_MB} MB"]
        key = run["label"]
        if run["kind"] == "new":
            new_rates[key] = run["rate"]
            floor = {
                "PostgreSQL, 2 processes": PG2_RATE,
                "PostgreSQL, 1 process": PG1_RATE,
                "SQLite, 1 process": SQLITE_RATE,
            }.get(key)
            if floor:
                targets.insert(0, f"≥ {_n(floor)}/s")
                checks.insert(0, Check(f"< {_n(floor)}/s", run["rate"] >= floor))
            if key == "PostgreSQL, 2 processes":
                targets.insert(1, f"≥ {PG2_CEILING_SHARE:.2f}x ceiling")
                checks.insert(
                    1, Check(f"< {PG2_CEILING_SHARE:.2f}x ceiling", run["ratio"] >= PG2_CEILING_SHARE)
                )
        elif key in new_rates:
            targets.insert(0, "≥ new rate")
            checks.insert(0, Check("< new rate", run["rate"] >= new_rates[key]))
        line.target = ", ".join(targets)
        verdicts.judge(line, checks)
        lines.append(line)

    trivy = results.get("trivy") or {}
    line = Line(
        "ingest trivy",
        f"POST /v1/ingest/trivy, {_n(trivy.get('vulnerabilities', 0))} vulns",
        target=f"≤ {TRIVY_SECONDS} s",
    )
    if trivy.get("seconds") is not None and trivy.get("status") == 200:
        line.value = f"{trivy['seconds']:.2f} s"
        line.rss = f"{trivy['rss_max_mb']:.0f} / {trivy['rss_sum_mb']:.0f}"
        line.target += f", RSS ≤ {RSS_MB} MB"
        line.note = f"{trivy['bytes'] / 1e6:.1f} MB report; {trivy.get('summary', '')}".rstrip("; ")
        verdicts.judge(
            line,
            [
                Check(f"> {TRIVY_SECONDS} s", trivy["seconds"] <= TRIVY_SECONDS),
                Check(f"RSS > {RSS_MB} MB", trivy["rss_max_mb"] <= RSS_MB),
            ],
        )
    else:
        line.value = trivy.get("note", "n/a")
    lines.append(line)

    growth = results.get("growth") or {}
    for step in growth.get("steps", []):
        lines.append(
            Line(
                "growth",
                f"{step['batch'] // 1000:,}k batch at {_n(step['store_size'])} stored",
                f"{_n(step['new_rate'])}/s",
                f"{step['new_rate'] / ceilings['postgresql']['rate']:.2f}"
                if ceilings.get("postgresql")
                else "",
                _ms(step["new_p50_ms"]),
                _ms(step["new_p99_ms"]),
                note=f"new findings (mean of 2 batches); {step['repeat_batch'] // 1000:,}k re-sent from the store: {_n(step['repeat_rate'])}/s"
                + (f"; bulk load {step['fill_seconds']:.0f} s" if step.get("fill_seconds") else ""),
            )
        )
    if growth.get("steps"):
        line = Line(
            "growth",
            f"rate at {_n(growth['steps'][-1]['store_size'])} ÷ at 0",
            f"{growth['ratio']:.3f}",
            target=f"≥ {GROWTH_RATIO}",
            note=f"re-sent: {growth['repeat_ratio']:.3f}",
        )
        verdicts.judge(line, [Check(f"< {GROWTH_RATIO}", growth["ratio"] >= GROWTH_RATIO)])
        lines.append(line)

    store = results.get("query_store_size", 0)
    for query in results.get("queries", []):
        page = "" if query["page"] == "-" else f" ({query['page']} page)"
        line = Line(f"query @{_n(store)}", f"{query['name']}{page}", note=query["note"])
        if query["n"]:
            line.p50, line.tail = _ms(query["p50_ms"]), _ms(query["p95_ms"])
            line.value = f"{query['n']} req"
            line.target = f"p95 ≤ {QUERY_P95_MS} ms"
            verdicts.judge(line, [Check(f"p95 > {QUERY_P95_MS} ms", query["p95_ms"] <= QUERY_P95_MS)])
        else:
            line.value = query["note"] or "n/a"
            line.note = ""
        lines.append(line)

    from bench.delivery_report import delivery_lines  # imports this module's Line/Check

    lines += delivery_lines(results.get("delivery") or {}, verdicts)
    return lines, verdicts


HEADERS = (
    "phase",
    "measure",
    "value",
    "x ceiling",
    "p50 ms",
    "p99/p95 ms",
    "RSS MB max/sum",
    "target",
    "result",
    "notes",
)


def summary(results: dict[str, Any], verdicts: Verdicts) -> str:
    load = results["environment"]
    return (
        f"Targets: {verdicts.passed} PASS, {verdicts.missed} MISS. Every ratio is to the ceiling measured in "
        f"this run (load average {load['load_average_start'][0]:.1f} -> {load.get('load_average_end', [0])[0]:.1f})."
    )


def render_table(lines: list[Line]) -> str:
    """A Markdown table (readable in a terminal, pasteable into the README)."""
    rows = [HEADERS] + [
        (ln.phase, ln.measure, ln.value, ln.ratio, ln.p50, ln.tail, ln.rss, ln.target, ln.result, ln.note)
        for ln in lines
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    right = {2, 3, 4, 5, 6}

    def fmt(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "| " + " | ".join(cells) + " |"

    sep = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([fmt(rows[0]), sep, *(fmt(row) for row in rows[1:])])


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def growth_chart(results: dict[str, Any], path: Path) -> bool:
    """Ingest rate against store size (PNG); False when there is nothing to draw."""
    steps = (results.get("growth") or {}).get("steps") or []
    if not steps:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [step["store_size"] for step in steps]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.plot(sizes, [s["new_rate"] for s in steps], marker="o", label=f"{steps[0]['batch']:,} new findings")
    ax.plot(
        sizes,
        [s["repeat_rate"] for s in steps],
        marker="s",
        label=f"{steps[0]['batch']:,} re-sent from the store",
    )
    ceiling = (results.get("ceiling") or {}).get("postgresql")
    if ceiling:
        ax.axhline(
            ceiling["rate"], color="grey", linestyle=":", label=f"COPY ceiling ({ceiling['rate']:,.0f}/s)"
        )
    ax.axhline(PG2_RATE, color="red", linestyle="--", linewidth=1, label=f"target {PG2_RATE:,}/s")
    ax.set_xlabel("findings already stored")
    ax.set_ylabel("findings/s (PostgreSQL, 2 processes, 4 clients)")
    ax.set_title(f"Tocsin ingest rate vs store size — {results['started_at'][:10]}")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:,.0f}k"))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True
