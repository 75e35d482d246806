"""Email intake benchmark (issue 3): SMTP intake rate, latency and memory, then a two-worker drain.

    .venv/bin/python bench/email_intake.py [--messages N] [--concurrency C] [--json]
    .venv/bin/python bench/email_intake.py --messages 100000 --no-drain   # memory flatness
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/email_intake.py

It reuses bench/intake.py (message generator, fresh database, SMTP clients) on a fresh,
throw-away database: SQLite in a temporary GUICHET_VAR_DIR, or, when DATABASE_URL is set, a
database guichet_bench_<pid> created on that server, migrated, and dropped at the end (also on
Ctrl-C). Settings: bench.bench_settings (DEBUG off, acknowledgements to memory).

Messages: bench/intake.py's French mail, ~5 KB of text, one in ten with a 100 KB PDF. The first
P of them are generated before the run (P = the drained burst plus C, at least 1000, at most N);
message i >= P is message i mod P with a new Message-ID, so it is another message to the intake
(another idempotency key, another blob) while memory stays that of P messages, whatever N.

1. Sink: a bare aiosmtpd server whose handler accepts and discards, with the same C clients
   and the same messages (the first min(N, --sink-messages)): the ceiling of this process.
2. Intake: Guichet's SMTP intake (`smtp_controller`): N messages, C clients, one open SMTP
   connection each. Latency: smtplib's `sendmail` on the open connection (MAIL, RCPT, DATA,
   the body and the wait for the `250`, which comes only after the commit): an upper bound of
   "end of DATA to 250" by the MAIL/RCPT round trips and the body's transfer on loopback.
   Memory: this process's current RSS (/proc/self/statm) each time the clients take the next
   N/20 messages; rss_growth_mb = RSS at the end minus RSS at 25 % of the run. The process
   holds the clients, the server, its thread pool and the P generated messages.
3. Drain: two `guichet.manage worker --interval 0.1` subprocesses process the backlog (parse,
   open the request, route, campaign check, acknowledgement queued in the outbox) until the
   first M submissions are processed: M = --drain-limit, by default all N but at most 3000
   (about two minutes at the target rate). drain_messages_per_s = M / wall time from starting
   the workers (Django start-up included). When M = N the run also waits for the task queue to
   be empty (acknowledgements delivered to memory) and reports that rate too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tqdm import tqdm  # noqa: E402

from bench.intake import (  # noqa: E402
    ATTACHMENT_BYTES,
    IntakeResult,
    Interrupted,
    Outgoing,
    Scratch,
    _percentile,
    build_message,
    code_version,
    free_port,
    pg_create,
    pg_drop,
    phase_intake,
    setup_django,
)

DRAIN_LIMIT_DEFAULT = 3000
SETTINGS_MODULE = "bench.bench_settings"
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_MESSAGE_ID = re.compile(rb"^Message-ID:[^\r\n]*", re.I | re.M)


def rss_mb() -> float:
    """Current resident set size of this process (not the peak: ru_maxrss never goes down)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES / 1024 / 1024


def pid_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_BYTES / 1024 / 1024
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


class MessageFeed:
    """N messages handed to the clients one at a time, built from a pool of P generated ones.

    `on_take(i)` is called (under the feed's lock) as message i is taken, before it is sent.
    """

    def __init__(
        self,
        pool: list[Outgoing],
        total: int,
        *,
        run_id: str,
        on_take: Callable[[int], None] | None = None,
    ) -> None:
        self.pool = pool
        self.total = total
        self.run_id = run_id
        self.on_take = on_take
        self._next = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.total

    def get_nowait(self) -> Outgoing:
        with self._lock:
            index = self._next
            if index >= self.total:
                raise queue.Empty
            self._next += 1
            if self.on_take is not None:
                self.on_take(index)
        return self.message(index)

    def message(self, index: int) -> Outgoing:
        if index < len(self.pool):
            return self.pool[index]
        base = self.pool[index % len(self.pool)]
        domain = base.sender.rpartition("@")[2]
        header = f"Message-ID: <email-intake.{self.run_id}.{index}@{domain}>".encode()
        return replace(base, raw=_MESSAGE_ID.sub(header, base.raw, count=1))


# ---------------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------------


class SinkHandler:
    """A bare aiosmtpd handler: accept every message, keep nothing."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def phase_sink(
    feed: MessageFeed, *, recipient: str, concurrency: int, stop: threading.Event
) -> IntakeResult:
    from aiosmtpd.controller import Controller
    from django.conf import settings

    host = "127.0.0.1"
    controller = Controller(
        SinkHandler(),
        hostname=host,
        port=free_port(host),
        data_size_limit=settings.GUICHET_SMTP_MAX_BYTES,
        decode_data=False,
        enable_SMTPUTF8=True,
    )
    controller.start()
    try:
        return phase_intake(
            feed,
            host=host,
            port=controller.port,
            recipient=recipient,
            concurrency=concurrency,
            stop=stop,
            desc="sink (bare aiosmtpd)",
        )
    finally:
        controller.stop()


@dataclass
class RssSamples:
    step: int
    points: list[tuple[int, float]] = field(default_factory=list)

    def on_take(self, index: int) -> None:
        if index % self.step == 0:
            self.points.append((index, rss_mb()))

    def at(self, fraction: float, total: int) -> float:
        """The first sample taken at or after this fraction of the run."""
        for index, value in self.points:
            if index >= fraction * total:
                return value
        return self.points[-1][1]


def phase_smtp_intake(
    feed: MessageFeed, *, recipient: str, concurrency: int, stop: threading.Event
) -> IntakeResult:
    from guichet.intake.channels.email.smtpd import smtp_controller

    host = "127.0.0.1"
    controller = smtp_controller(hostname=host, port=free_port(host))
    controller.start()
    try:
        return phase_intake(
            feed,
            host=host,
            port=controller.port,
            recipient=recipient,
            concurrency=concurrency,
            stop=stop,
            desc="intake (Guichet SMTP)",
        )
    finally:
        controller.stop()


@dataclass
class DrainResult:
    target: int
    processed: int = 0
    seconds: float = 0.0
    steady_rate: float = 0.0
    queue_empty_seconds: float | None = None
    worker_rss_mb: list[float] = field(default_factory=list)
    log_tail: str = ""


def _worker_env(scratch: Scratch) -> dict[str, str]:
    from django.conf import settings

    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env["GUICHET_VAR_DIR"] = scratch.var_dir
    env.pop("GUICHET_SMTP_HOST", None)
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        env["GUICHET_SQLITE_PATH"] = str(database["NAME"])
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]  # the bench database (setup_django)
    return env


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: the worker stops after its current task
    deadline = time.monotonic() + 15
    for proc in workers:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def phase_drain(
    scratch: Scratch, *, target: int, wait_queue: bool, workers: int, stop: threading.Event
) -> DrainResult:
    from django_tasks_db.models import DBTaskResult

    from guichet.intake.models import Submission

    done_statuses = [Submission.Status.PROCESSED, Submission.Status.QUARANTINED]
    result = DrainResult(target=target)
    log_path = Path(scratch.var_dir) / "bench-workers.log"
    env = _worker_env(scratch)
    procs: list[subprocess.Popen[bytes]] = []
    with open(log_path, "ab") as log:
        try:
            started = time.perf_counter()
            for _ in range(workers):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "guichet.manage", "worker", "--interval", "0.1"],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        # Not in our process group: Ctrl-C reaches us, and we stop them.
                        start_new_session=True,
                    )
                )
            with tqdm(
                total=target,
                desc=f"drain ({workers} workers)",
                unit="msg",
                file=sys.stderr,
                dynamic_ncols=True,
            ) as bar:
                while True:
                    done = Submission.objects.filter(status__in=done_statuses).count()
                    bar.update(min(done, target) - bar.n)
                    if done >= target:
                        result.seconds = time.perf_counter() - started
                        result.processed = done
                        break
                    if stop.is_set():
                        raise Interrupted
                    dead = [proc for proc in procs if proc.poll() is not None]
                    if dead:
                        raise RuntimeError(f"a worker exited with code {dead[0].returncode}")
                    time.sleep(0.25)
            # Steady state: between the first and the target-th processed submission.
            stamps = (
                Submission.objects.filter(processed_at__isnull=False)
                .order_by("processed_at")
                .values_list("processed_at", flat=True)[:target]
            )
            times = list(stamps)
            if len(times) > 1:
                seconds = (times[-1] - times[0]).total_seconds()
                result.steady_rate = (len(times) - 1) / seconds if seconds else 0.0
            if wait_queue:
                while not stop.is_set():
                    pending = DBTaskResult.objects.exclude(
                        status__in=["SUCCESSFUL", "FAILED"]
                    ).count()
                    if pending == 0:
                        result.queue_empty_seconds = time.perf_counter() - started
                        break
                    time.sleep(0.25)
                if stop.is_set():
                    raise Interrupted
            result.worker_rss_mb = [
                value for value in (pid_rss_mb(proc.pid) for proc in procs) if value is not None
            ]
        finally:
            _stop_workers(procs)
    text = log_path.read_text(encoding="utf-8", errors="replace").strip()
    result.log_tail = "\n".join(text.splitlines()[-10:])
    return result


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--messages", "-n", type=int, default=5000, help="messages sent to the intake (5000)"
    )
    parser.add_argument("--concurrency", "-c", type=int, default=8, help="SMTP client threads (8)")
    parser.add_argument(
        "--sink-messages",
        type=int,
        default=5000,
        help="messages sent to the bare aiosmtpd sink (min(N, 5000)); 0 skips it",
    )
    parser.add_argument(
        "--drain-limit",
        type=int,
        default=None,
        help=f"drain the first M submissions (default: all N, at most {DRAIN_LIMIT_DEFAULT})",
    )
    parser.add_argument("--no-drain", action="store_true", help="skip the worker drain")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.concurrency < 1 or args.workers < 1:
        parser.error("--messages, --concurrency and --workers must be positive")
    if args.sink_messages < 0:
        parser.error("--sink-messages must be 0 or more")
    if args.drain_limit is not None and args.drain_limit < 1:
        parser.error("--drain-limit must be positive")
    return args


def _r(value: float | None, digits: int = 1) -> float | None:
    if value is None or value != value:  # None or NaN
        return None
    return round(value, digits)


def run(args: argparse.Namespace, scratch: Scratch, stop: threading.Event) -> int:
    from django.conf import settings
    from django.core.management import call_command

    say = print
    commit = code_version()
    n = args.messages
    drain_target = 0 if args.no_drain else min(n, args.drain_limit or DRAIN_LIMIT_DEFAULT)
    load_start = os.getloadavg()
    say(
        f"Guichet email intake benchmark: {n} messages, {args.concurrency} SMTP clients, {scratch.database}"
    )
    say(
        f"  code: {commit}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
        f"settings {os.environ.get('DJANGO_SETTINGS_MODULE')} (DEBUG {settings.DEBUG})"
    )
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    say(f"  migrate: {time.perf_counter() - t0:.1f} s")

    recipient = settings.GUICHET_ACCEPTED_RECIPIENTS[0]
    pool_size = min(n, max(drain_target, 1000) + args.concurrency)
    pool = [
        build_message(i, recipient=recipient)
        for i in tqdm(
            range(pool_size), desc="generating", unit="msg", file=sys.stderr, dynamic_ncols=True
        )
    ]
    run_id = f"{os.getpid()}-{int(time.time())}"
    sizes = [len(m.raw) for m in pool]
    say(
        f"  generated: {pool_size} distinct messages ({sum(m.has_attachment for m in pool)} with a "
        f"{ATTACHMENT_BYTES // 1024} KB PDF, median {statistics.median(sizes) / 1024:.1f} KB, "
        f"mean {statistics.mean(sizes) / 1024:.1f} KB); beyond them, the same with a new Message-ID"
    )

    sink: IntakeResult | None = None
    sink_n = min(n, args.sink_messages)
    if sink_n:
        sink = phase_sink(
            MessageFeed(pool, sink_n, run_id=f"sink-{run_id}"),
            recipient=recipient,
            concurrency=args.concurrency,
            stop=stop,
        )
        if stop.is_set():
            raise Interrupted

    samples = RssSamples(step=max(n // 20, 1))
    feed = MessageFeed(pool, n, run_id=run_id, on_take=samples.on_take)
    load_intake = os.getloadavg()
    intake = phase_smtp_intake(feed, recipient=recipient, concurrency=args.concurrency, stop=stop)
    if stop.is_set():
        raise Interrupted
    samples.points.append((n, rss_mb()))

    from django_tasks_db.models import DBTaskResult

    from guichet.casework.models import Request
    from guichet.core.models import OutgoingMail
    from guichet.intake.models import Submission

    committed = Submission.objects.count()
    rate = intake.accepted / intake.seconds if intake.seconds else 0.0
    p50 = _percentile(intake.latencies, 50) * 1000
    p95 = _percentile(intake.latencies, 95) * 1000
    p99 = _percentile(intake.latencies, 99) * 1000
    sink_rate = sink.accepted / sink.seconds if sink and sink.seconds else None
    rss_start = samples.points[0][1]
    rss_end = samples.points[-1][1]
    rss_peak = max(value for _, value in samples.points)
    rss_growth = rss_end - samples.at(0.25, n)

    say("")
    if sink is not None and sink_rate is not None:
        say("Ceiling - bare aiosmtpd sink (accept and discard), same clients, same process")
        say(
            f"  accepted: {sink.accepted}/{sink_n} in {sink.seconds:.2f} s → {sink_rate:.0f} msg/s, "
            f"p50 {_percentile(sink.latencies, 50) * 1000:.1f} ms, p95 {_percentile(sink.latencies, 95) * 1000:.1f} ms, "
            f"process CPU {sink.cpu_seconds / max(sink.accepted, 1) * 1000:.1f} ms/msg"
        )
    say("Intake - Guichet SMTP (250 only after commit)")
    say(
        f"  accepted (250): {intake.accepted}/{n} in {intake.seconds:.2f} s → {rate:.1f} msg/s"
        f"   committed submissions: {committed}"
        + (f"   ({rate / sink_rate * 100:.0f} % of the sink)" if sink_rate else "")
    )
    say(
        f"  latency (sendmail on an open connection, up to the 250): p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
        f"p99 {p99:.1f} ms, max {max(intake.latencies, default=0) * 1000:.1f} ms"
    )
    say(
        f"  process CPU: {intake.cpu_seconds / max(intake.accepted, 1) * 1000:.1f} ms/msg (clients + server + commit);"
        f" load average at start {load_intake[0]:.2f}"
    )
    say(
        f"  RSS (current, every {samples.step} messages): start {rss_start:.0f} MB, end {rss_end:.0f} MB, "
        f"max {rss_peak:.0f} MB, growth from 25 % to 100 % of the run {rss_growth:+.1f} MB"
    )
    say("  RSS samples (MB): " + " ".join(f"{value:.0f}" for _, value in samples.points))
    if intake.errors:
        say(f"  errors: {len(intake.errors)} (first: {intake.errors[0]})")

    problems: list[str] = []
    if intake.accepted != n:
        problems.append(f"accepted {intake.accepted} != {n}")
    if committed != intake.accepted:
        problems.append(f"committed {committed} != accepted {intake.accepted}")

    drain: DrainResult | None = None
    drain_rate: float | None = None
    if drain_target:
        target = min(drain_target, committed)
        drain = phase_drain(
            scratch,
            target=target,
            wait_queue=target == committed,
            workers=args.workers,
            stop=stop,
        )
        drain_rate = target / drain.seconds if drain.seconds else 0.0
        processed = Submission.objects.filter(status=Submission.Status.PROCESSED).count()
        quarantined = Submission.objects.filter(status=Submission.Status.QUARANTINED).count()
        failed = Submission.objects.filter(status=Submission.Status.FAILED).count()
        requests = Request.objects.count()
        acks = OutgoingMail.objects.filter(kind=OutgoingMail.Kind.ACKNOWLEDGEMENT)
        acks_total, acks_sent = acks.count(), acks.filter(status=OutgoingMail.Status.SENT).count()
        failed_tasks = DBTaskResult.objects.filter(status="FAILED").count()
        say("")
        say(
            f"Drain - {args.workers} worker processes (parse, open request, route, campaign check, acknowledgement queued)"
        )
        say(
            f"  {target} submissions processed in {drain.seconds:.1f} s from starting the workers → {drain_rate:.1f} msg/s"
            f" (steady state, first to last processed: {drain.steady_rate:.1f} msg/s)"
        )
        if drain.queue_empty_seconds is not None:
            say(
                f"  task queue empty (acknowledgements delivered to memory too) after {drain.queue_empty_seconds:.1f} s"
                f" → {target / drain.queue_empty_seconds:.1f} msg/s"
            )
        say(
            f"  submissions processed: {processed}, quarantined: {quarantined}, failed: {failed};"
            f" requests: {requests}; acknowledgements queued: {acks_total} (sent: {acks_sent}); failed tasks: {failed_tasks}"
        )
        if drain.worker_rss_mb:
            say("  worker RSS at the end: " + ", ".join(f"{v:.0f} MB" for v in drain.worker_rss_mb))
        if failed_tasks or failed or quarantined:
            problems.append(
                f"drain: {failed_tasks} failed tasks, {failed} failed, {quarantined} quarantined"
            )
            if drain.log_tail:
                say("  worker log (end):\n" + drain.log_tail)
        if requests < target:
            problems.append(f"requests {requests} < drained {target}")

    targets = [
        ("intake ≥ 150 msg/s", rate >= 150),
        ("p95 ≤ 100 ms", p95 <= 100),
        ("memory flat (growth 25→100 % ≤ 5 %)", rss_growth <= 0.05 * samples.at(0.25, n)),
    ]
    if drain_rate is not None:
        targets.append(("drain ≥ 30 msg/s (2 workers)", drain_rate >= 30))
    say("")
    say("Targets: " + "; ".join(f"{label}: {'met' if ok else 'NOT met'}" for label, ok in targets))
    load_end = os.getloadavg()
    say(f"Load average at the end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    for problem in problems:
        print(f"CHECK FAILED: {problem}", file=sys.stderr)
    if not problems:
        say("Checks: OK (every message accepted and committed once; drained ones opened requests)")

    if args.json:
        print(
            json.dumps(
                {
                    "database": scratch.database,
                    "messages": n,
                    "concurrency": args.concurrency,
                    "messages_per_s": _r(rate),
                    "p50_ms": _r(p50),
                    "p95_ms": _r(p95),
                    "p99_ms": _r(p99),
                    "peak_rss_mb": _r(rss_peak),
                    "rss_start_mb": _r(rss_start),
                    "rss_end_mb": _r(rss_end),
                    "rss_growth_mb": _r(rss_growth),
                    "sink_messages": sink_n,
                    "sink_messages_per_s": _r(sink_rate),
                    "sink_cpu_ms_per_msg": _r(sink.cpu_seconds / max(sink.accepted, 1) * 1000, 2)
                    if sink
                    else None,
                    "drain_messages": drain.target if drain else 0,
                    "drain_workers": args.workers if drain else 0,
                    "drain_messages_per_s": _r(drain_rate),
                    "drain_steady_messages_per_s": _r(drain.steady_rate) if drain else None,
                    "drain_queue_empty_s": _r(drain.queue_empty_seconds) if drain else None,
                    "errors": len(intake.errors),
                    "intake_cpu_ms_per_msg": _r(
                        intake.cpu_seconds / max(intake.accepted, 1) * 1000, 2
                    ),
                    "latency": "sendmail on an open connection",
                    "load_average": [round(x, 2) for x in load_start],
                    "commit": commit,
                    "ok": not problems,
                }
            ),
            flush=True,
        )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    scratch = Scratch(
        var_dir=tempfile.mkdtemp(prefix="guichet-bench-"),
        admin_url=os.environ.get("DATABASE_URL") or None,
    )

    def on_sigint(signum: int, frame: Any) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, on_sigint)
    django_ready = False
    code = 1
    try:
        if scratch.admin_url:
            scratch.pg_name = pg_create(scratch.admin_url)
        os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
        setup_django(scratch)
        django_ready = True
        code = run(args, scratch, stop)
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: cleaning up", file=sys.stderr)
        code = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if django_ready:
            from django.db import connections

            connections.close_all()
        if scratch.pg_name and scratch.admin_url:
            try:
                pg_drop(scratch.admin_url, scratch.pg_name)
            except Exception as exc:
                print(f"could not drop database {scratch.pg_name}: {exc}", file=sys.stderr)
        shutil.rmtree(scratch.var_dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
