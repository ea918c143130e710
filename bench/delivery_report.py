"""The delivery lines of the one results table (``bench.report.build_lines`` appends them)."""

from __future__ import annotations

from typing import Any

from bench.report import Check, Line, Verdicts

TARGET_PER_WORKER = 200.0  # notifications/s per worker to the fake Slack (issue 6, point 10)


def delivery_lines(delivery: dict[str, Any], verdicts: Verdicts) -> list[Line]:
    lines: list[Line] = []
    target = float(delivery.get("target_per_worker") or TARGET_PER_WORKER)
    for run in delivery.get("runs", []):
        phase = f"delivery {run['label']}"
        if run.get("error"):
            lines.append(Line(phase, "failed", "n/a", note=run["error"][:160]))
            continue
        per_finding = run["scenario"] == "per-finding"
        paced = run["scenario"] == "paced"
        measure = f"{run['findings']:,} findings -> {run['messages']:,} messages" + (
            "" if per_finding else f" ({run['check']['groups']:,} groups)"
        )
        value = f"{run['rate_per_worker']:,.0f}/s/worker" if per_finding else f"{run['rate']:,.0f}/s"
        notes = [
            f"{run['sent']:,}/{run['notifications']:,} sent in {run['delivery_seconds']:.1f} s "
            f"({run['rate']:,.0f}/s total)",
        ]
        if not per_finding and run.get("lag_after_group_wait") is not None:
            notes.append(
                f"last message {run['lag_after_group_wait']:.1f} s after last ingest answer + group_wait"
            )
        notes.append(
            f"worker CPU {run['worker_cpu_ms_per_message']:.1f} ms/message, "
            f"{run.get('transactions_per_message', 0):.1f} DB transactions/message"
        )
        notes.append(f"lost {run['lost']}, duplicates {run['duplicates']}")
        if paced:
            notes.append("1 message/s per channel (default pace)")
        if not run["drained"]:
            notes.append("NOT DRAINED")
        line = Line(phase, measure, value, note="; ".join(notes))
        checks = [
            Check(f"{run['lost']} lost", run["lost"] == 0 and run["drained"]),
            Check(f"{run['duplicates']} duplicates", run["duplicates"] == 0),
        ]
        targets = ["0 lost", "0 duplicates"]
        if per_finding:
            targets.insert(0, f"≥ {target:,.0f}/s/worker")
            checks.insert(0, Check(f"< {target:,.0f}/s/worker", run["rate_per_worker"] >= target))
        line.target = ", ".join(targets)
        verdicts.judge(line, checks)
        lines.append(line)
    return lines
