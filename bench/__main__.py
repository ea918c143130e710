"""`make bench` / `python -m bench [--quick]`: the whole benchmark suite, end to end.

Phases: generate -> ceiling (COPY / executemany) -> ingest through the real service (PostgreSQL with
1 and 2 processes, SQLite with 1; a mixed pass then the same findings again; the Trivy endpoint) ->
growth (a 10k batch at 0 .. 1M stored) -> queries at the largest store -> delivery (10k new findings
through the outbox into the fake Slack with 1 and 3 `tocsin worker` processes) -> one table, JSON and
a chart.
Environment: BENCH_SCALE (1 = the issue's numbers; --quick = 0.01), BENCH_PASS_SECONDS (time cap per
ingest pass), TOCSIN_BENCH_DATABASE_URL, BENCH_KEEP_DB=1 (keep the scratch database), BENCH_APP_DIR
(benchmark the service of another checkout).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from app.settings import load_settings
from bench import ceiling, delivery, generator, growth, query, report
from bench.common import RESULTS_DIR, ROOT, BenchConfig, progress
from bench.load import Body, LoadResult, auth_headers, batch_bodies, post_batches
from bench.rows import build_rows, payloads_and_rows, verify_clones
from bench.server import Service, drop_database, pg_connect, recreate_database, serve_command

GROWTH_SERIAL_BASE = 50_000_000
PHASES = ("ceiling", "ingest", "growth", "query", "delivery")


def _environment(cfg: BenchConfig) -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return out.stdout.rstrip("\n")

    with pg_connect(cfg.admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "app", "alembic").splitlines()]
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted_app_files": dirty,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": row[0] if row else "?",
        "load_average_start": list(os.getloadavg()),
        "service_command": " ".join(Path(part).name for part in serve_command()[0]),
        "service_command_note": serve_command()[1],
    }


def _ingest_record(
    label: str, kind: str, result: LoadResult, planned: int, service: Service, ceiling_rate: float
) -> dict[str, Any]:
    stats = service.stats()
    api_cpu = sum(s.cpu_seconds for s in stats.values())
    db_cpu = service.database_cpu() if service.database_url.startswith("postgresql") else 0.0
    record = {
        "label": label,
        "kind": kind,
        "pass": "new + 30% repeats" if kind == "new" else "same findings again",
        "processes": service.processes,
        "findings": result.findings,
        "planned": planned,
        "capped": result.findings + result.errors * 500 < planned,
        "seconds": round(result.seconds, 3),
        "rate": result.rate,
        "ratio": result.rate / ceiling_rate if ceiling_rate else 0.0,
        "requests": result.requests,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "errors": result.errors,
        "error_samples": result.error_samples[:3],
        "connections_per_process": list(result.connections.values()),
        "server_errors": service.server_errors() if result.errors else {},
        "rss_max_mb": max(s.peak_rss for s in stats.values()) / 2**20,
        "rss_sum_mb": sum(s.peak_rss for s in stats.values()) / 2**20,
        "api_cpu_us": api_cpu / result.findings * 1e6 if result.findings else 0.0,
        "db_cpu_us": db_cpu / result.findings * 1e6 if result.findings else 0.0,
    }
    line = (
        f"  {label}, {record['pass']}: {result.findings:,} findings in {result.seconds:.1f} s = "
        f"{result.rate:,.0f}/s, p50 {result.p50_ms:,.0f} ms, p99 {result.p99_ms:,.0f} ms "
        f"(created {result.created:,}, updated {result.updated:,}, unchanged {result.unchanged:,})"
    )
    if result.errors:
        line += (
            f", {result.errors} FAILED: "
            + "; ".join(f"{count}x {error}" for error, count in record["server_errors"].items())
            or result.error_samples[0]
        )
    progress(line)
    return record


def _post_trivy(service: Service, report_bytes: bytes, vulns: int) -> dict[str, Any]:
    record: dict[str, Any] = {"vulnerabilities": vulns, "bytes": len(report_bytes), "status": None}
    service.reset_stats()
    with httpx.Client(base_url=service.base_url, headers=auth_headers(), timeout=300) as client:
        began = time.perf_counter()
        response = client.post(
            "/v1/ingest/trivy", content=report_bytes, headers={"content-type": "application/json"}
        )
        seconds = time.perf_counter() - began
    record["status"] = response.status_code
    stats = service.stats()
    record["rss_max_mb"] = max(s.peak_rss for s in stats.values()) / 2**20
    record["rss_sum_mb"] = sum(s.peak_rss for s in stats.values()) / 2**20
    if response.status_code == 404:
        record["note"] = "n/a (endpoint missing)"
    elif response.status_code != 200:
        record["note"] = f"HTTP {response.status_code}: {response.text[:120]}"
    else:
        record["seconds"] = seconds
        try:
            body = response.json()
            record["summary"] = ", ".join(
                f"{key} {body[key]:,}"
                for key in ("created", "updated", "unchanged")
                if isinstance(body.get(key), int)
            )
        except ValueError:
            pass
    progress(
        f"  Trivy report ({vulns:,} vulnerabilities, {len(report_bytes) / 1e6:.1f} MB): {record.get('note') or f'{seconds:.2f} s'}"
        f", peak RSS {record['rss_max_mb']:.0f} MB"
    )
    return record


def run_ingest(
    cfg: BenchConfig,
    bodies: list[Body],
    ceilings: dict[str, Any],
    trivy_bytes: bytes,
    scratch: Path,
    pass_cap: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    records: list[dict[str, Any]] = []
    trivy: dict[str, Any] = {}
    planned = sum(body.findings for body in bodies)
    sqlite_url = f"sqlite:///{scratch / 'tocsin.db'}"
    for label, url, processes in (
        ("PostgreSQL, 1 process", cfg.bench_url, 1),
        ("PostgreSQL, 2 processes", cfg.bench_url, 2),
        ("SQLite, 1 process", sqlite_url, 1),
    ):
        database = "postgresql" if url.startswith("postgresql") else "sqlite"
        if database == "postgresql":
            recreate_database(cfg.admin_url, cfg.bench_url)
        progress(
            f"ingest {label}: {planned:,} findings in batches of {cfg.batch_size} from {cfg.clients} clients"
        )
        with Service(url, processes) as service:
            ceiling_rate = ceilings.get(database, {}).get("rate", 0.0)
            service.reset_stats()
            first = post_batches(service, bodies, cfg.clients, pass_cap)
            records.append(_ingest_record(label, "new", first, planned, service, ceiling_rate))
            sent = bodies[: first.bodies_sent]
            service.reset_stats()
            again = post_batches(service, sent, cfg.clients, pass_cap)
            records.append(
                _ingest_record(label, "repeats", again, sum(b.findings for b in sent), service, ceiling_rate)
            )
            if label == "PostgreSQL, 2 processes":
                trivy = _post_trivy(service, trivy_bytes, cfg.trivy_vulns)
    return records, trivy


def run_growth(
    cfg: BenchConfig,
    templates: list[Any],
    template_payloads: list[dict[str, Any]],
    new_sets: list[list[list[dict[str, Any]]]],
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    recreate_database(cfg.admin_url, cfg.bench_url)
    result = growth.Growth()
    queries: list[dict[str, Any]] = []
    progress(
        f"growth: batches of {cfg.growth_batch:,} findings at store sizes {', '.join(f'{s:,}' for s in cfg.growth_sizes)}"
    )
    filled = 0
    with Service(cfg.bench_url, 2) as service:
        growth.load_templates(cfg.bench_url, templates)
        for step, target in enumerate(cfg.growth_sizes):
            stored = growth.store_size(cfg.bench_url)
            fill_seconds = 0.0
            if target > stored:
                count = target - stored
                first = growth.BULK_SERIAL_BASE + filled

                def tick(done: int, count: int = count) -> None:
                    if done == count or done % 100_000 == 0:
                        progress(f"  bulk load: {done:,} / {count:,} findings (+ aliases, events)")

                fill_seconds = growth.bulk_fill(cfg.bench_url, templates, first, count, tick)
                filled += count
                progress(
                    f"  store now {target:,} findings ({count / fill_seconds:,.0f} findings/s bulk load)"
                )
            repeats = growth.repeat_bodies(
                template_payloads,
                range(growth.BULK_SERIAL_BASE, growth.BULK_SERIAL_BASE + filled),
                new_sets[step][0],
                cfg.growth_batch,
                cfg.batch_size,
            )
            measured = growth.measure_step(
                service, max(target, stored), new_sets[step], repeats, cfg.batch_size, cfg.clients
            )
            measured.fill_seconds = fill_seconds
            result.steps.append(measured)
            progress(
                f"  at {measured.store_size:,} stored: {measured.new.rate:,.0f}/s new "
                f"(p99 {measured.new.p99_ms:,.0f} ms), {measured.repeats.rate:,.0f}/s re-sent"
                + (
                    f", {measured.new.errors + measured.repeats.errors} FAILED"
                    if measured.new.errors + measured.repeats.errors
                    else ""
                )
            )
        store = growth.store_size(cfg.bench_url)
        progress(
            f"query at {store:,} findings: up to {cfg.query_requests} requests per line, {cfg.query_seconds:.0f} s cap"
        )
        for line in query.run_queries(
            service.base_url, cfg.query_requests, cfg.query_seconds, cfg.deep_pages
        ):
            queries.append(
                {
                    "name": line.name,
                    "page": line.page,
                    "n": len(line.latencies),
                    "p50_ms": line.p50_ms,
                    "p95_ms": line.p95_ms,
                    "items": line.items,
                    "note": line.note,
                }
            )
            shown = (
                f"p50 {line.p50_ms:,.1f} ms, p95 {line.p95_ms:,.1f} ms over {len(line.latencies)}"
                if line.latencies
                else line.note
            )
            progress(f"  {line.name} ({line.page}): {shown}")
    first_rate = result.steps[0].repeats.rate if result.steps else 0.0
    record = {
        "steps": [
            {
                "store_size": s.store_size,
                "batch": s.new.findings // 2,
                "repeat_batch": s.repeats.findings,
                "new_rate": s.new.rate,
                "new_p50_ms": s.new.p50_ms,
                "new_p99_ms": s.new.p99_ms,
                "repeat_rate": s.repeats.rate,
                "repeat_p99_ms": s.repeats.p99_ms,
                "errors": s.new.errors + s.repeats.errors,
                "fill_seconds": s.fill_seconds,
            }
            for s in result.steps
        ],
        "ratio": result.ratio,
        "repeat_ratio": result.steps[-1].repeats.rate / first_rate if first_rate else 0.0,
    }
    return record, queries, store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--quick", action="store_true", help="everything tiny (BENCH_SCALE=0.01): a smoke test"
    )
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated subset of {', '.join(PHASES)}"
    )
    parser.add_argument("--table", metavar="JSON", help="print the table of a saved run and exit")
    args = parser.parse_args(argv)
    if args.table:
        saved = orjson.loads(Path(args.table).read_bytes())
        lines, verdicts = report.build_lines(saved)
        print(report.render_table(lines))
        print(report.summary(saved, verdicts))
        return 0
    phases = set(args.only.split(","))
    cfg = BenchConfig.from_env(quick=args.quick)
    quick = cfg.scale < 0.5
    pass_cap = float(os.environ.get("BENCH_PASS_SECONDS", "10" if quick else "20"))
    began = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    results: dict[str, Any] = {
        "started_at": cfg.started_at.isoformat(timespec="seconds"),
        "scale": cfg.scale,
        "pass_cap_seconds": pass_cap,
        "environment": _environment(cfg),
        "ceiling": {},
        "ingest": [],
    }
    env = results["environment"]
    progress(
        f"Tocsin benchmark, scale {cfg.scale:g}: commit {env['commit']}"
        + (
            f" + uncommitted changes to {len(env['uncommitted_app_files'])} app file(s)"
            if env["uncommitted_app_files"]
            else ""
        )
        + f", {env['cores']} cores, PostgreSQL {env['postgresql']} (scratch database {cfg.bench_url.rsplit('/', 1)[-1]})"
    )
    if env["service_command_note"]:
        progress(f"NOTE: {env['service_command_note']}")
    try:
        if phases & {"ceiling", "ingest", "growth", "query"}:  # the findings data; delivery makes its own
            distinct_count = round(cfg.ingest_count * (1 - cfg.repeat_ratio))
            progress(
                f"generate: {cfg.ingest_count:,} findings ({distinct_count:,} distinct) and their rows, growth and Trivy payloads"
            )
            distinct, rows = payloads_and_rows(distinct_count, seed=7)
            items = generator.blocked_repeats(
                distinct, cfg.ingest_count, cfg.repeat_ratio, block=min(10_000, cfg.ingest_count)
            )
            bodies = batch_bodies(items, cfg.batch_size)
            new_sets = [  # two sets of new findings per growth step
                [
                    generator.findings_parallel(
                        cfg.growth_batch, seed=9, start=GROWTH_SERIAL_BASE + (2 * k + r) * cfg.growth_batch
                    )
                    for r in range(2)
                ]
                for k in range(len(cfg.growth_sizes))
            ]
            trivy_bytes = orjson.dumps(generator.trivy_report(cfg.trivy_vulns))
            progress(
                f"  {len(bodies):,} request bodies ({sum(len(b.content) for b in bodies) / 1e6:,.0f} MB) and "
                f"{len(rows):,} findings rows built by the service's own functions"
            )

            if "ceiling" in phases:
                recreate_database(cfg.admin_url, cfg.bench_url)
                pg = ceiling.postgres_ceiling(cfg.bench_url, rows)
                progress(
                    f"ceiling PostgreSQL COPY: {pg.rows:,} rows in {pg.seconds:.1f} s = {pg.rate:,.0f}/s"
                )
                lite = ceiling.sqlite_ceiling(scratch / "ceiling.db", rows)
                progress(
                    f"ceiling SQLite executemany: {lite.rows:,} rows in {lite.seconds:.1f} s = {lite.rate:,.0f}/s"
                )
                results["ceiling"] = {
                    c.database: {"rows": c.rows, "seconds": c.seconds, "rate": c.rate} for c in (pg, lite)
                }
            del rows
            if "ingest" in phases:
                results["ingest"], results["trivy"] = run_ingest(
                    cfg, bodies, results["ceiling"], trivy_bytes, scratch, pass_cap
                )
            if "growth" in phases:
                pool = distinct[: min(len(distinct), 20_000)]
                templates = build_rows(pool, load_settings().scoring)
                verify_clones(templates, pool, load_settings().scoring)
                results["growth"], results["queries"], results["query_store_size"] = run_growth(
                    cfg, templates, pool, new_sets
                )
        if "delivery" in phases:
            results["delivery"] = delivery.run_delivery(cfg)
    finally:
        if not cfg.keep_database:
            drop_database(cfg.admin_url, cfg.bench_url)
        shutil.rmtree(scratch, ignore_errors=True)

    results["environment"]["load_average_end"] = list(os.getloadavg())
    results["wall_seconds"] = round(time.perf_counter() - began, 1)
    lines, verdicts = report.build_lines(results)
    results["targets"] = {
        "passed": verdicts.passed,
        "missed": verdicts.missed,
        "missed_lines": verdicts.missed_lines,
    }
    stem = cfg.date_tag
    if phases != set(PHASES):  # a partial run must not overwrite the day's full results
        stem += "-" + "-".join(phase for phase in PHASES if phase in phases)
    stem += "-quick" if quick else ""
    json_path = RESULTS_DIR / f"{stem}.json"
    chart_path = RESULTS_DIR / f"{stem}-growth.png"
    report.write_json(results, json_path)
    drew = report.growth_chart(results, chart_path)
    progress(f"done in {results['wall_seconds'] / 60:.1f} min")
    print()
    print(report.render_table(lines))
    print()
    print(report.summary(results, verdicts))
    print(
        f"Results: {json_path.relative_to(ROOT)}"
        + (f", chart: {chart_path.relative_to(ROOT)}" if drew else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
