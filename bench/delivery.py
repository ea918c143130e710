"""Delivery: new findings posted through the API, routed to 20 teams, delivered by `tocsin worker`
processes into the fake Slack Web API (``tests/fakes/slack.py``, in this process).

Each scenario runs on a fresh scratch database: `tocsin serve` (API only, ``TOCSIN_DISPATCHER_EMBEDDED=false``)
migrates it, `tocsin apply` loads 20 teams (one Slack channel each on the fake, one ``owner`` tag rule),
the findings are posted in batches of 500, and N `tocsin worker` processes drain the outbox.

- **grouped** (``group_by: [team, type]``, 10 types -> ~200 groups): the workers run (idle, polling)
  before ingest starts, as in production; measured: the lag from the last ingest answer to the last
  message at the fake minus ``group_wait``, messages sent, notifications/s from the first message to
  the last.
- **per finding** (``group_by: [finding]``, one message per notification): the findings are ingested and
  due before the workers start, so the rate from the first message at the fake to the last is the
  workers' steady per-message throughput; the target (>= 200 notifications/s per worker) is about this.
- **paced**: grouped with the default per-channel pace (``TOCSIN_DELIVERY_DEFAULT_RATE_PER_SECOND``,
  1 message/s/channel, no ``rate_per_second`` option), 1 worker, fewer findings: how long pacing takes.

Every scenario checks that nothing was lost (each notification ``sent``, each one's delivery row
``ok``) and counts duplicates: per group, messages the fake accepted (a root message plus replies in its
thread) beyond the ok rows of ``deliveries``, plus root messages no group knows (a group's first message
sent twice). In the per-finding scenarios the fake's log is also read finding by finding (the ``DLV-``
marker in each title): missing and repeated findings.
"""

from __future__ import annotations

import collections
import http.server
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil  # type: ignore[import-untyped]

from bench.common import ROOT, TOKEN, BenchConfig, progress, scaled
from bench.load import batch_bodies, post_batches
from bench.server import Service, _db_backends, drop_database, pg_connect, recreate_database
from tests.fakes.slack import FakeSlack

SLACK_TOKEN = "xoxb-bench-delivery-0000000000"
SECRET_NAME = "BENCH_SLACK"
TYPES = [
    "Recon:EC2/PortProbeUnprotectedPort",
    "UnauthorizedAccess:EC2/SSHBruteForce",
    "CryptoCurrency:EC2/BitcoinTool.B!DNS",
    "Backdoor:EC2/C&CActivity.B",
    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
    "Policy:S3/BucketBlockPublicAccessDisabled",
    "Trojan:EC2/DNSDataExfiltration",
    "Impact:EC2/WinRMBruteForce",
    "Discovery:S3/MaliciousIPCaller",
    "Persistence:IAMUser/AnomalousBehavior",
]
SEVERITIES = ["medium", "medium", "high", "high", "high", "critical"]
MARKER = re.compile(r"DLV-\d{6}")
TARGET_PER_WORKER = 200.0  # notifications/s per worker to the fake (issue 6, point 10)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str  # "grouped" | "per-finding" | "paced"
    workers: int
    findings: int
    group_by: tuple[str, ...]
    rate_per_second: float | None  # the channels' option; None: the default pace (1/s per channel)
    workers_first: bool  # True: workers idle before ingest (latency); False: start once all is due

    @property
    def label(self) -> str:
        pace = "" if self.rate_per_second else ", default pacing"
        return f"{self.name}, {self.workers} worker{'s' if self.workers > 1 else ''}{pace}"


@dataclass(slots=True)
class DeliveryConfig:
    findings: int
    per_finding: int
    paced: int
    teams: int = 20
    group_wait: float = 1.0
    group_interval: float = 1.0
    concurrency: int | None = None  # None: the worker's default (TOCSIN_DELIVERY_CONCURRENCY)
    deadline: float = 120.0  # seconds a scenario may take to drain before it is reported as incomplete
    batch_size: int = 500
    pyspy_dir: Path | None = None
    only: tuple[str, ...] = ()  # scenario labels' prefixes to run (BENCH_DELIVERY_ONLY); empty: all
    with_paced: bool = True  # the default-pacing run takes ~25 s whatever the scale: not in --quick

    @classmethod
    def from_bench(cls, cfg: BenchConfig) -> DeliveryConfig:
        quick = cfg.scale < 0.5
        profile = os.environ.get("BENCH_DELIVERY_PYSPY")
        return cls(
            findings=scaled(10_000, cfg.scale, 400),
            per_finding=scaled(2_000, cfg.scale, 300),
            paced=scaled(1_000, cfg.scale, 200),
            group_wait=float(os.environ.get("BENCH_DELIVERY_GROUP_WAIT", "1")),
            group_interval=float(os.environ.get("BENCH_DELIVERY_GROUP_INTERVAL", "1")),
            concurrency=int(os.environ["BENCH_DELIVERY_CONCURRENCY"])
            if os.environ.get("BENCH_DELIVERY_CONCURRENCY")
            else None,
            deadline=float(os.environ.get("BENCH_DELIVERY_DEADLINE", "30" if quick else "120")),
            pyspy_dir=Path(profile) if profile else None,
            only=tuple(p.strip() for p in os.environ.get("BENCH_DELIVERY_ONLY", "").split(";") if p.strip()),
            with_paced=not quick,
        )

    def scenarios(self) -> list[Scenario]:
        grouped, single = ("team", "type"), ("finding",)
        every = [
            Scenario("grouped", 1, self.findings, grouped, 1000.0, True),
            Scenario("grouped", 3, self.findings, grouped, 1000.0, True),
            Scenario("per-finding", 1, self.per_finding, single, 1000.0, False),
            Scenario("per-finding", 3, self.per_finding, single, 1000.0, False),
        ]
        if self.with_paced:
            every.append(Scenario("paced", 1, self.paced, grouped, None, True))
        return [sc for sc in every if not self.only or sc.label.startswith(self.only)]


# -- data ----------------------------------------------------------------------------------------------


def team_name(index: int) -> str:
    return f"team-{index + 1:02d}"


def channel_target(index: int) -> str:
    return f"C0BENCH{index + 1:02d}"


def make_findings(count: int, teams: int, seed: int = 21) -> list[dict[str, Any]]:
    """``count`` new native findings (GuardDuty-like, ~1.5 KB ``raw``), spread evenly over ``teams`` owner
    tags and the 10 types; each title carries a ``DLV-nnnnnn`` marker the fake's log is read by."""
    rng = random.Random(seed)
    out = []
    for serial in range(count):
        team = team_name(serial % teams)
        ftype = TYPES[(serial // teams) % len(TYPES)]
        account = f"{100000000000 + serial % 7:012d}"
        region = ("eu-west-1", "us-east-1", "us-west-2")[serial % 3]
        instance = f"i-{rng.getrandbits(64):016x}"
        rid = f"arn:aws:ec2:{region}:{account}:instance/{instance}"
        out.append(
            {
                "source": "guardduty",
                "source_id": f"bench-delivery-{seed}-{serial:08d}",
                "type": ftype,
                "title": f"DLV-{serial:06d} {ftype.split('/')[-1]} on {instance}",
                "severity": rng.choice(SEVERITIES),
                "description": "Synthetic finding of the delivery benchmark. " * 4,
                "observed_at": "2026-11-01T12:00:00+00:00",
                "confidence": rng.randrange(40, 101),
                "resource": {
                    "type": "AwsEc2Instance",
                    "id": rid,
                    "account_id": account,
                    "region": region,
                    "tags": {"owner": team, "env": rng.choice(["prod", "staging", "dev"])},
                    "public": rng.random() < 0.2,
                },
                "raw": {"id": f"bench-delivery-{serial}", "detail": "x" * 1200},
            }
        )
    return out


def config_yaml(
    teams: int,
    fake_url: str,
    group_by: tuple[str, ...],
    group_wait: float,
    group_interval: float,
    rate: float | None,
) -> str:
    """The routing configuration `tocsin apply` loads: 20 teams, one Slack channel each, one tag rule."""
    lines = ["teams:"]
    for i in range(teams):
        lines += [
            f"  - name: {team_name(i)}",
            "    timezone: UTC",
            *(["    default: true"] if i == 0 else []),
            "    policy:",
            "      events: [new]",
            "      min_severity: low",
            f"      group_by: [{', '.join(group_by)}]",
            f"      group_wait: {group_wait:g}s",
            f"      group_interval: {group_interval:g}s",
        ]
    lines.append("channels:")
    for i in range(teams):
        options = f'{{base_url: "{fake_url}", timeout_seconds: 10'
        options += f", rate_per_second: {rate:g}}}" if rate else "}"
        lines += [
            f"  - name: {team_name(i)}-slack",
            f"    team: {team_name(i)}",
            "    kind: slack",
            f"    target: {channel_target(i)}",
            f"    secret_ref: {SECRET_NAME}",
            f"    options: {options}",
        ]
    lines += [
        "rules:",
        "  - name: owner-tag",
        "    match:",
        '      tags: ["owner=~team-.*"]',
        "    team_from_tag: owner",
    ]
    return "\n".join(lines) + "\n"


def start_fake_slack(channels: dict[str, str]) -> FakeSlack:
    """The fake Slack, with TCP_NODELAY on its sockets unless BENCH_DELIVERY_FAKE_NAGLE=1.

    ``http.server`` writes a response's headers and body in two sends; with Nagle's algorithm on (the
    default) the body waits for the client's delayed ACK, ~40 ms, on every keep-alive request after the
    first: the fake would answer in 44 ms instead of ~1 ms and a worker would look 40x slower than it is.
    Real Slack does not do that. The switch is a class attribute read by every handler in this process
    (only the fake's).
    """
    nagle = os.environ.get("BENCH_DELIVERY_FAKE_NAGLE", "") not in ("", "0")
    http.server.BaseHTTPRequestHandler.disable_nagle_algorithm = not nagle
    return FakeSlack(token=SLACK_TOKEN, channels=channels).__enter__()


# -- processes -----------------------------------------------------------------------------------------


def _delivery_env(database_url: str) -> dict[str, str]:
    return {
        "TOCSIN_DATABASE_URL": database_url,
        "TOCSIN_DISPATCHER_EMBEDDED": "false",
        "TOCSIN_OUTBOUND_ALLOW_HOSTS": "127.0.0.1",
        f"TOCSIN_SECRET_{SECRET_NAME}": SLACK_TOKEN,
        "TOCSIN_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class ApiService(Service):
    """`tocsin serve` with delivery left to `tocsin worker` processes."""

    def env(self) -> dict[str, str]:
        env = Service.env(self)
        env.update(_delivery_env(self.database_url))
        env["TOCSIN_BOOTSTRAP_TOKEN"] = TOKEN
        return env


@dataclass
class Workers:
    """N `tocsin worker` processes (optionally under `py-spy record`), their logs and CPU time."""

    database_url: str
    count: int
    app_dir: Path
    concurrency: int | None = None
    pyspy_out: Path | None = None
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tocsin-bench-workers-")))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[psutil.Process] = field(default_factory=list)
    cpu0: dict[int, float] = field(default_factory=dict)

    def start(self) -> Workers:
        env = {**os.environ, **_delivery_env(self.database_url)}
        if self.app_dir != ROOT:
            env["PYTHONPATH"] = str(self.app_dir)
        command = [sys.executable, "-m", "app.cli", "worker"]
        if self.concurrency:
            command += ["--concurrency", str(self.concurrency)]
        for index in range(self.count):
            argv = command
            if self.pyspy_out is not None and index == 0:
                py_spy = Path(sys.executable).parent / "py-spy"
                out = self.pyspy_out.with_suffix(".txt")
                extra = os.environ.get("BENCH_DELIVERY_PYSPY_ARGS", "").split()  # e.g. --gil, --idle
                argv = [
                    str(py_spy),
                    "record",
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-o",
                    str(out),
                    *extra,
                    "--",
                    *command,
                ]
            log = (self.log_dir / f"worker-{index}.log").open("wb")
            self.procs.append(
                subprocess.Popen(argv, cwd=self.app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for index, proc in enumerate(self.procs):
            path = self.log_dir / f"worker-{index}.log"
            while "delivering" not in path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tocsin worker did not start:\n{self.log_tail(index)}")
                time.sleep(0.05)
        for proc in self.procs:
            worker = psutil.Process(proc.pid)
            if worker.name().startswith("py-spy"):
                worker = next(c for c in worker.children(recursive=True) if "python" in c.name())
            self.workers.append(worker)
        self.cpu0 = {w.pid: _cpu(w) for w in self.workers}

    def cpu_seconds(self) -> list[float]:
        return [_cpu(w) - self.cpu0.get(w.pid, 0.0) for w in self.workers]

    def log_tail(self, index: int, lines: int = 15) -> str:
        path = self.log_dir / f"worker-{index}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> list[str]:
        """SIGTERM (graceful), then the last line each worker printed."""
        for proc, worker in zip(self.procs, self.workers or [None] * len(self.procs), strict=False):
            if worker is not None and worker.pid != proc.pid:
                worker.send_signal(signal.SIGTERM)  # under py-spy: stop the worker, py-spy writes its file
            elif proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        lasts = [self.log_tail(i, 1) for i in range(len(self.procs))]
        return lasts


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


def _apply(database_url: str, yaml_text: str, app_dir: Path) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(yaml_text)
    try:
        env = {**os.environ, **_delivery_env(database_url)}
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "apply", handle.name],
            cwd=app_dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise RuntimeError(f"tocsin apply failed ({done.returncode}):\n{done.stderr[-2000:]}")


# -- measuring -----------------------------------------------------------------------------------------


def _outbox_counts(database_url: str, conn: Any = None) -> dict[str, int]:
    if conn is None:
        with pg_connect(database_url, autocommit=True) as own:
            return _outbox_counts(database_url, own)
    rows = conn.execute("SELECT status, count(*) FROM notifications GROUP BY status").fetchall()
    return {str(status): int(n) for status, n in rows}


def _transactions(database_url: str) -> int:
    """Committed + rolled back transactions of the scratch database so far (pg_stat_database)."""
    with pg_connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_drained(database_url: str, expected: int, deadline: float) -> tuple[dict[str, int], bool]:
    """Poll the outbox until every expected notification has left pending/held (or the deadline)."""
    last_shown = time.monotonic()
    with pg_connect(database_url, autocommit=True) as conn:
        return _poll(conn, expected, deadline, last_shown)


def _poll(conn: Any, expected: int, deadline: float, last_shown: float) -> tuple[dict[str, int], bool]:
    while True:
        counts = _outbox_counts("", conn)
        total = sum(counts.values())
        queued = counts.get("pending", 0) + counts.get("held", 0)
        if total >= expected and queued == 0:
            return counts, True
        if time.monotonic() > deadline:
            return counts, False
        if time.monotonic() - last_shown > 10:
            progress(f"    ... {counts.get('sent', 0):,} of {expected:,} notifications sent")
            last_shown = time.monotonic()
        time.sleep(0.1)


def _scalar(conn: Any, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _check(database_url: str, slack: FakeSlack, per_finding: bool) -> dict[str, Any]:
    """Lost and duplicate messages: the database's notification log against the fake's call log."""
    with pg_connect(database_url) as conn:
        groups = conn.execute("SELECT id, thread_ref FROM notification_groups").fetchall()
        ok_per_group: dict[str, int] = {
            str(gid): int(n)
            for gid, n in conn.execute(
                "SELECT group_id, count(*) FROM deliveries WHERE ok GROUP BY group_id"
            ).fetchall()
        }
        failed_attempts = _scalar(conn, "SELECT count(*) FROM deliveries WHERE NOT ok")
        unrecorded = _scalar(
            conn,
            "SELECT count(*) FROM notifications n LEFT JOIN deliveries d ON d.id = n.delivery_id "
            "WHERE n.status = 'sent' AND (d.id IS NULL OR NOT d.ok)",
        )
    posted = slack.posted()
    per_thread = collections.Counter(call.thread_ts or call.ts for call in posted)
    known_roots = {ref for _, ref in groups if ref}
    duplicates = sum(n for root, n in per_thread.items() if root not in known_roots)
    missing_messages = 0
    for gid, ref in groups:
        recorded = int(ok_per_group.get(gid, 0))
        seen = per_thread.get(ref, 0) if ref else 0
        duplicates += max(0, seen - recorded)
        missing_messages += max(0, recorded - seen)
    check: dict[str, Any] = {
        "messages": len(posted),
        "calls": len(slack.calls),
        "groups": len(groups),
        "groups_sent": sum(1 for _, ref in groups if ref),
        "deliveries_ok": sum(int(n) for n in ok_per_group.values()),
        "deliveries_failed": int(failed_attempts),
        "duplicate_messages": duplicates,
        "recorded_not_received": missing_messages,
        "sent_without_ok_delivery": int(unrecorded),
    }
    if per_finding:
        seen_markers: collections.Counter[str] = collections.Counter()
        for call in posted:
            blob = (call.text or "") + orjson.dumps(call.blocks).decode()
            for marker in set(MARKER.findall(blob)):
                seen_markers[marker] += 1
        check["findings_in_fake"] = len(seen_markers)
        check["findings_repeated"] = sum(1 for n in seen_markers.values() if n > 1)
    return check


RESET_TABLES = (
    "deliveries",
    "notifications",
    "notification_groups",
    "finding_events",
    "finding_aliases",
    "findings",
)
"""Emptied between scenarios (the routing configuration, tokens and migrations stay): a fresh outbox and
store without paying for a new database, migrations and service start each time."""


def _reset(database_url: str) -> None:
    with pg_connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(RESET_TABLES)} RESTART IDENTITY CASCADE")
        conn.execute("VACUUM ANALYZE")


@dataclass
class Stage:
    """What the scenarios share: the scratch database (migrated by the API), the API, the fake Slack."""

    cfg: BenchConfig
    dcfg: DeliveryConfig
    api: Service
    slack: FakeSlack
    applied: str = ""

    def prepare(self, sc: Scenario) -> None:
        _reset(self.cfg.bench_url)
        yaml_text = config_yaml(
            self.dcfg.teams,
            self.slack.url,
            sc.group_by,
            self.dcfg.group_wait,
            self.dcfg.group_interval,
            sc.rate_per_second,
        )
        if yaml_text != self.applied:
            _apply(self.cfg.bench_url, yaml_text, self.api.app_dir)
            self.applied = yaml_text
        self.slack.calls.clear()
        self.slack.messages.clear()


def run_scenario(stage: Stage, sc: Scenario, scenario_index: int) -> dict[str, Any]:
    cfg, dcfg, api, slack = stage.cfg, stage.dcfg, stage.api, stage.slack
    findings = make_findings(sc.findings, dcfg.teams)
    bodies = batch_bodies(findings, dcfg.batch_size)
    record: dict[str, Any] = {
        "label": sc.label,
        "scenario": sc.name,
        "workers": sc.workers,
        "findings": sc.findings,
        "teams": dcfg.teams,
        "group_by": list(sc.group_by),
        "group_wait": dcfg.group_wait,
        "group_interval": dcfg.group_interval,
        "rate_per_second": sc.rate_per_second,
        "concurrency": dcfg.concurrency,
        "load_average_start": os.getloadavg()[0],
    }
    progress(
        f"delivery {sc.label}: {sc.findings:,} new findings for {dcfg.teams} teams, group_by "
        f"[{', '.join(sc.group_by)}], group_wait {dcfg.group_wait:g}s"
    )
    stage.prepare(sc)
    pyspy = (
        dcfg.pyspy_dir / f"worker-{scenario_index}-{sc.name}-{sc.workers}w"
        if dcfg.pyspy_dir is not None
        else None
    )
    if pyspy is not None:
        pyspy.parent.mkdir(parents=True, exist_ok=True)
    workers = Workers(cfg.bench_url, sc.workers, api.app_dir, dcfg.concurrency, pyspy)
    try:
        if sc.workers_first:
            workers.start()
        ingest_began = time.time()
        load = post_batches(api, bodies, clients=2)
        ingest_done = time.time()
        record["ingest"] = {
            "seconds": round(load.seconds, 3),
            "rate": load.rate,
            "created": load.created,
            "errors": load.errors,
            "error_samples": load.error_samples[:3],
        }
        expected = sum(_outbox_counts(cfg.bench_url).values())
        record["notifications"] = expected
        progress(
            f"  ingest: {load.findings:,} findings in {load.seconds:.1f} s ({load.rate:,.0f}/s), "
            f"{expected:,} notifications queued"
            + (f", {load.errors} FAILED requests: {load.error_samples[:1]}" if load.errors else "")
        )
        if not sc.workers_first:
            time.sleep(max(0.0, ingest_done + dcfg.group_wait - time.time()) + 0.2)  # all due
            workers.start()
        workers_began = time.time()
        db_cpu0 = {pid: _cpu(p) for pid, p in _db_backends().items()}
        xacts0 = _transactions(cfg.bench_url)
        me = psutil.Process()
        fake_cpu0 = _cpu(me)
        counts, drained = _wait_drained(cfg.bench_url, expected, time.monotonic() + dcfg.deadline)
        worker_cpu = workers.cpu_seconds()
        db_cpu = sum(_cpu(p) - db_cpu0.get(pid, 0.0) for pid, p in _db_backends().items())
        fake_cpu = _cpu(me) - fake_cpu0
        time.sleep(0.6)  # the statistics collector reports transactions up to ~0.5 s late
        xacts = _transactions(cfg.bench_url) - xacts0
    finally:
        lasts = workers.stop()
    posted = slack.posted()
    check = _check(cfg.bench_url, slack, per_finding=sc.group_by == ("finding",))
    times = sorted(call.time for call in posted)
    sent = counts.get("sent", 0)
    first, last = (times[0], times[-1]) if times else (0.0, 0.0)
    window = last - first
    rate = (sent / window) if window > 0 else 0.0
    lost = expected - sent
    record.update(
        drained=drained,
        counts=counts,
        sent=sent,
        lost=lost,
        messages=len(posted),
        first_message_after_ingest=round(first - ingest_done, 3) if times else None,
        lag_after_group_wait=round(last - ingest_done - dcfg.group_wait, 3) if times else None,
        ingest_to_last_message=round(last - ingest_began, 3) if times else None,
        workers_to_last_message=round(last - workers_began, 3) if times else None,
        delivery_seconds=round(window, 3),
        rate=rate,
        rate_per_worker=rate / sc.workers,
        worker_cpu_seconds=[round(c, 2) for c in worker_cpu],
        worker_cpu_us_per_notification=sum(worker_cpu) / sent * 1e6 if sent else 0.0,
        worker_cpu_ms_per_message=sum(worker_cpu) / len(posted) * 1e3 if posted else 0.0,
        db_cpu_us_per_notification=db_cpu / sent * 1e6 if sent else 0.0,
        fake_cpu_us_per_message=fake_cpu / len(posted) * 1e6 if posted else 0.0,
        transactions_per_message=xacts / len(posted) if posted else 0.0,
        worker_last_lines=lasts,
        check=check,
        duplicates=check["duplicate_messages"],
        pyspy=str(pyspy.with_suffix(".txt")) if pyspy is not None else None,
    )
    if sc.group_by == ("finding",):
        record["lost"] = max(lost, sc.findings - check.get("findings_in_fake", 0))
        record["duplicates"] = max(record["duplicates"], check.get("findings_repeated", 0))
    line = (
        f"  {len(posted):,} messages, {sent:,} of {expected:,} notifications sent in {window:.1f} s "
        f"(first to last message) = {rate:,.0f}/s ({rate / sc.workers:,.0f}/s per worker)"
    )
    if sc.workers_first and times:
        line += (
            f"; last message {record['lag_after_group_wait']:.2f} s after the last ingest answer + group_wait"
        )
    line += (
        f"; worker CPU {record['worker_cpu_us_per_notification']:,.0f} µs/notification"
        f" ({record['worker_cpu_ms_per_message']:.1f} ms/message), PostgreSQL {record['db_cpu_us_per_notification']:,.0f} µs"
        f", {record['transactions_per_message']:.1f} transactions/message"
        f"; lost {record['lost']}, duplicates {record['duplicates']}"
    )
    if not drained:
        line += f"; NOT DRAINED after {dcfg.deadline:.0f} s: {counts}"
    progress(line)
    return record


def run_delivery(cfg: BenchConfig) -> dict[str, Any]:
    """Every scenario, each on a fresh scratch database; the `delivery` part of the results JSON."""
    dcfg = DeliveryConfig.from_bench(cfg)
    runs: list[dict[str, Any]] = []
    recreate_database(cfg.admin_url, cfg.bench_url)
    channels = {channel_target(i): f"{team_name(i)}-alerts" for i in range(dcfg.teams)}
    slack = start_fake_slack(channels)
    try:
        api = ApiService(cfg.bench_url, 1).start()
    except BaseException:
        slack.stop()
        raise
    try:
        stage = Stage(cfg, dcfg, api, slack)
        for index, scenario in enumerate(dcfg.scenarios()):
            try:
                runs.append(run_scenario(stage, scenario, index))
            except Exception as exc:  # one broken scenario must not cost the rest of the suite
                error = f"{type(exc).__name__}: {str(exc)[:400]}"
                progress(f"  {scenario.label} FAILED: {error}")
                runs.append(
                    {
                        "label": scenario.label,
                        "scenario": scenario.name,
                        "workers": scenario.workers,
                        "error": error,
                    }
                )
    finally:
        api.stop()
        slack.stop()
    return {
        "target_per_worker": TARGET_PER_WORKER,
        "teams": dcfg.teams,
        "group_wait": dcfg.group_wait,
        "group_interval": dcfg.group_interval,
        "fake_tcp_nodelay": http.server.BaseHTTPRequestHandler.disable_nagle_algorithm,
        "runs": runs,
    }


def main() -> int:
    """``python -m bench.delivery``: the delivery phase alone, printed (no JSON; see ``python -m bench``)."""
    cfg = BenchConfig.from_env(quick="--quick" in sys.argv)
    try:
        result = run_delivery(cfg)
    finally:
        if not cfg.keep_database:
            drop_database(cfg.admin_url, cfg.bench_url)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
