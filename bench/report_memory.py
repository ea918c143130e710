"""Peak memory of a large scanner report: ``python -m bench.report_memory [--mb 50] [--only server,cli]``.

Generates a Trivy report of about ``--mb`` MiB (``bench.generator.trivy_report``, ~2 KB a vulnerability)
and measures, on SQLite, each against a fresh ``tocsin serve`` and a fresh database file:

- ``server``: the report posted whole to ``POST /v1/ingest/trivy``; the server process's peak RSS
  (``VmHWM`` from ``/proc/<pid>/status``: the kernel's exact high-water mark, no sampling) and its RSS
  before the request (the idle service);
- ``cli``: ``tocsin ingest --format trivy <file>`` (batched, the report being over
  ``--max-request-bytes``); the CLI process's peak RSS (``ru_maxrss`` of that child from ``wait4``) and
  the server's peak during the batches.

Prints one line per measurement and writes ``bench/results/<date>-report-memory.json``. Numbers are
recorded, never asserted. Linux only (``/proc``, ``wait4``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import generator
from bench.common import RESULTS_DIR, ROOT, TOKEN, progress
from bench.server import BIN, Service

MIB = 1024 * 1024


def generate(path: Path, mebibytes: float) -> dict[str, Any]:
    """Write a Trivy report of about ``mebibytes`` MiB; the vulnerability count is scaled from a sample."""
    sample = len(orjson.dumps(generator.trivy_report(1000)))
    vulns = max(1, int(mebibytes * MIB / (sample / 1000)))
    data = orjson.dumps(generator.trivy_report(vulns))
    path.write_bytes(data)
    return {"vulnerabilities": vulns, "bytes": len(data)}


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def measure_server(report: Path, scratch: Path) -> dict[str, Any]:
    """POST the report whole to /v1/ingest/trivy; the server's RSS before and its peak."""
    with Service(database_url=f"sqlite:///{scratch / 'server.db'}") as service:
        pid = service.pids[0]
        idle = _status_kib(pid, "VmRSS")
        data = report.read_bytes()
        started = time.perf_counter()
        with httpx.Client(base_url=service.base_url, timeout=900) as client:
            resp = client.post(
                "/v1/ingest/trivy",
                content=data,
                headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
            )
        seconds = time.perf_counter() - started
        del data
        peak = _status_kib(pid, "VmHWM")
        body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    return {
        "status": resp.status_code,
        "seconds": round(seconds, 2),
        "created": body.get("created"),
        "detail": None if resp.status_code == 200 else str(body.get("detail", resp.text))[:300],
        "server_idle_rss_mib": _mib(idle),
        "server_peak_rss_mib": _mib(peak),
    }


def measure_cli(report: Path, scratch: Path) -> dict[str, Any]:
    """``tocsin ingest`` (batched) against a fresh server; the CLI's and the server's peaks."""
    with Service(database_url=f"sqlite:///{scratch / 'cli.db'}") as service:
        pid = service.pids[0]
        idle = _status_kib(pid, "VmRSS")
        env = {**os.environ, "TOCSIN_URL": service.base_url, "TOCSIN_TOKEN": TOKEN}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(BIN / "tocsin"), "ingest", "--format", "trivy", str(report)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # wait4 gives this child's own resource usage: ru_maxrss is its peak RSS in KiB on Linux. The
        # pipes are small (a line per batch), so reading them after the exit cannot block the child.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        out = proc.stdout.read().decode() if proc.stdout else ""
        err = proc.stderr.read().decode() if proc.stderr else ""
        proc.returncode = os.waitstatus_to_exitcode(status)
        server_peak = _status_kib(pid, "VmHWM")
    return {
        "exit_code": proc.returncode,
        "seconds": round(seconds, 2),
        "output": out.strip()[:300],
        "error": err.strip().splitlines()[-1][:300] if proc.returncode and err.strip() else None,
        "cli_peak_rss_mib": _mib(usage.ru_maxrss),
        "server_idle_rss_mib": _mib(idle),
        "server_peak_rss_mib": _mib(server_peak),
    }


def _commit() -> str:
    probe = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    return probe.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_memory", description=__doc__)
    parser.add_argument("--mb", type=float, default=50.0, help="report size in MiB (default 50)")
    parser.add_argument("--only", default="server,cli", help="comma-separated: server, cli")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = parser.parse_args(argv)
    phases = {name.strip() for name in args.only.split(",") if name.strip()}
    results: dict[str, Any] = {"commit": _commit(), "database": "sqlite", "at": datetime.now(UTC).isoformat()}
    with tempfile.TemporaryDirectory(prefix="tocsin-report-memory-") as tmp:
        scratch = Path(tmp)
        report = scratch / "trivy.json"
        progress(f"generate a Trivy report of ~{args.mb:g} MiB")
        results["report"] = generate(report, args.mb)
        size = results["report"]["bytes"] / MIB
        progress(f"report: {results['report']['vulnerabilities']:,} vulnerabilities, {size:.1f} MiB")
        if "server" in phases:
            progress("POST /v1/ingest/trivy, whole")
            results["server"] = measure_server(report, scratch)
            progress(f"server: {results['server']}")
        if "cli" in phases:
            progress("tocsin ingest (batched)")
            results["cli"] = measure_cli(report, scratch)
            progress(f"cli: {results['cli']}")
    out = args.out or RESULTS_DIR / f"{datetime.now(UTC).date().isoformat()}-report-memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
