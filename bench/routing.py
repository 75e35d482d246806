"""Routing benchmark: the issue's figures on the shipped dev set, from a fresh installation.

    .venv/bin/python bench/routing.py [--json] [--dev FILE.jsonl] [--embeddings] [--large N]

1. In a throw-away installation (a temporary GUICHET_VAR_DIR for SQLite or, when DATABASE_URL
   is set, a database guichet_bench_<pid> created on that server and dropped at the end),
   train the router from the shipped corpus as `guichet train_router` does on first start,
   embeddings included and no cache: that is the training time.
2. In a fresh child process pinned to one thread (OMP_NUM_THREADS=1), load the active model
   from the database (load time, and the resident memory it adds, sentence encoder included),
   then route every dev message one at a time, as intake does (latency per message).
3. With --large N: store N labelled examples in the database (the seed corpus recombined:
   sentences of examples of one code shuffled together, some without accents or in capitals,
   as a Région's archive imported with `train_router --examples` would be) and retrain through
   the same path as the daily retraining: read, cross-validate, compare, store. Prints the
   time and the peak memory of the process.

The dev set is never trained on. With --json the last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.intake import Scratch, pg_create, pg_drop  # noqa: E402

TARGETS = {
    "accuracy": (">=", 0.90),
    "macro_f1": (">=", 0.88),
    "auto_rate": (">=", 0.80),
    "auto_precision": (">=", 0.97),
    "ext_recall": (">=", 0.90),
    "latency_ms_p95": ("<=", 50.0),
    "model_load_s": ("<=", 2.0),
    "model_rss_mb": ("<=", 300.0),
    "train_s": ("<=", 120.0),
    "large_train_s": ("<=", 300.0),
}


def setup_django(scratch: Scratch) -> None:
    from bench.intake import setup_django as intake_setup_django

    os.environ["DJANGO_SETTINGS_MODULE"] = "guichet.settings"
    if not scratch.admin_url:
        os.environ.pop("DATABASE_URL", None)
    intake_setup_django(scratch)


def _rss_mb() -> float:
    """Current resident set size (not the peak), from /proc where there is one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(scratch: Scratch, dev_path: Path) -> dict[str, Any]:
    """Child process: load the active model and route the dev set one message at a time."""
    setup_django(scratch)
    from guichet.routing.evaluation import classifier_evaluate, rows_read
    from guichet.routing.model_store import active_classifier

    rows = rows_read(dev_path)
    before = _rss_mb()
    start = time.perf_counter()
    classifier = active_classifier()
    if classifier is None:
        raise SystemExit("no active model")
    # The sentence encoder is loaded on first use: part of loading the model.
    classifier.predict("Chauffage en panne au lycée", "Les radiateurs sont froids depuis lundi.")
    load_s = time.perf_counter() - start
    report = classifier_evaluate(classifier, rows)
    report["model_load_s"] = round(load_s, 3)
    report["model_rss_mb"] = round(_rss_mb() - before, 1)
    report["process_rss_mb"] = round(_rss_mb(), 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    parser.add_argument(
        "--dev", type=Path, default=ROOT / "guichet" / "routing" / "data" / "dev.jsonl"
    )
    parser.add_argument(
        "--embeddings",
        action="store_true",
        help="train with the e5 sentence encoder too (train_router --embeddings)",
    )
    parser.add_argument(
        "--large",
        type=int,
        metavar="N",
        help="then retrain on N stored examples (the issue's figure: 100000)",
    )
    parser.add_argument("--measure", metavar="VAR_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--pg-name", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    admin_url = os.environ.get("DATABASE_URL") or None
    if args.measure:
        scratch = Scratch(var_dir=args.measure, admin_url=admin_url, pg_name=args.pg_name)
        print(json.dumps(measure(scratch, args.dev)), flush=True)
        return 0

    scratch = Scratch(
        var_dir=tempfile.mkdtemp(prefix="guichet-bench-routing-"), admin_url=admin_url
    )
    django_ready = False
    try:
        if admin_url:
            scratch.pg_name = pg_create(admin_url)
        setup_django(scratch)
        django_ready = True
        return _run(args, scratch)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if django_ready:
            from django.db import connections

            connections.close_all()
        if admin_url and scratch.pg_name:
            pg_drop(admin_url, scratch.pg_name)
        shutil.rmtree(scratch.var_dir, ignore_errors=True)


def _run(args: argparse.Namespace, scratch: Scratch) -> int:
    from django.core.management import call_command

    from guichet.routing.training import router_train, training_config

    print(
        f"Guichet routing benchmark: dev set {args.dev.name}, {scratch.database}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    call_command("migrate", verbosity=0, interactive=False)
    start = time.perf_counter()
    outcome = router_train(
        actor="bench", force=True, config=training_config(use_embeddings=args.embeddings)
    )
    train_s = time.perf_counter() - start
    print(
        f"  trained {outcome.version} on {outcome.trained_on} examples in {train_s:.1f} s (no embedding cache, {os.cpu_count()} CPUs)"
    )
    cv = outcome.cv
    print(
        f"  cross-validation on the training corpus: accuracy {cv['accuracy']:.3f}, auto {cv['auto_rate']:.1%} at {cv['auto_precision']:.1%}, ECE {cv['ece']:.3f}"
    )

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    child = subprocess.run(
        [sys.executable, __file__, "--measure", scratch.var_dir, "--dev", str(args.dev)]
        + (["--pg-name", scratch.pg_name] if scratch.pg_name else []),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return 1
    report = json.loads(child.stdout.strip().splitlines()[-1])
    report["train_s"] = round(train_s, 1)
    report["trained_on"] = outcome.trained_on
    report["embeddings"] = args.embeddings
    report["database"] = scratch.database
    if args.large:
        report.update(large_retrain(args.large))

    print("")
    print(f"Dev set ({report['n']} messages never trained on), one message at a time, one thread:")
    labels = {
        "accuracy": "accuracy",
        "macro_f1": "macro-F1",
        "auto_rate": "routed automatically",
        "auto_precision": "  of which right",
        "ext_recall": "ext:* recall",
        "ece": "calibration error (ECE)",
        "latency_ms_p50": "latency p50 (ms)",
        "latency_ms_p95": "latency p95 (ms)",
        "train_s": "training time (s)",
        "model_load_s": "model load time (s)",
        "model_rss_mb": "model memory (MB RSS)",
        "large_train_s": f"retraining on {args.large or 0:,} (s)",
        "large_peak_rss_mb": "  peak memory (MB RSS)",
    }
    for key, label in labels.items():
        if key not in report:
            continue
        value = report[key]
        target = TARGETS.get(key)
        mark = ""
        if target:
            op, limit = target
            ok = value >= limit if op == ">=" else value <= limit
            mark = f"  (target {op} {limit}: {'ok' if ok else 'MISSED'})"
        print(f"  {label:<26} {value}{mark}")
    print(
        "  most frequent confusions: "
        + ", ".join(
            f"{c['expected']}→{c['predicted']} ×{c['count']}" for c in report["confusions"][:5]
        )
    )
    if args.json:
        from guichet.routing.evaluation import SUMMARY_KEYS

        keys = [
            *SUMMARY_KEYS,
            "train_s",
            "model_load_s",
            "model_rss_mb",
            "process_rss_mb",
            "trained_on",
            "model_version",
            "embeddings",
            "database",
            "large_n",
            "large_train_s",
            "large_peak_rss_mb",
        ]
        print(json.dumps({k: report[k] for k in keys if k in report}), flush=True)
    return 0


_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")


def _unaccented(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def synthetic_examples(n: int, *, seed: int = 7) -> list[tuple[str, str, str]]:
    """N (subject, body, code) triples recombined from the seed corpus, all distinct."""
    from guichet.routing.training import seed_rows

    by_code: dict[str, list[list[str]]] = {}
    subjects: dict[str, list[str]] = {}
    for row in seed_rows():
        sentences = [s for s in _SENTENCE_RE.split(row.body) if s.strip()]
        by_code.setdefault(row.expected, []).append(sentences)
        subjects.setdefault(row.expected, []).append(row.subject)
    rng = random.Random(seed)
    codes = sorted(by_code)
    out = []
    for index in range(n):
        code = codes[index % len(codes)]
        pool = by_code[code]
        sentences = [s for body in rng.sample(pool, 3) for s in body]
        body = " ".join(rng.sample(sentences, min(len(sentences), rng.randint(2, 7))))
        if rng.random() < 0.2:
            body = _unaccented(body).lower()
        elif rng.random() < 0.05:
            body = body.upper()
        out.append((rng.choice(subjects[code]), f"{body} (réf. {index})", code))
    return out


def large_retrain(n: int) -> dict[str, Any]:
    """Store N labelled examples, then retrain as the daily task does; time and peak memory."""
    from guichet.routing.models import LabelledExample
    from guichet.routing.training import router_train

    examples = synthetic_examples(n)
    LabelledExample.objects.bulk_create(
        (
            LabelledExample(
                subject=subject[:500], body=body, code=code, source=LabelledExample.Source.IMPORT
            )
            for subject, body, code in examples
        ),
        batch_size=2000,
    )
    print(f"  {n:,} examples stored; retraining…", flush=True)
    start = time.perf_counter()
    outcome = router_train(actor="bench")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  retrained on {outcome.trained_on:,} examples in {seconds:.0f} s ({outcome.reason})")
    return {
        "large_n": outcome.trained_on,
        "large_train_s": round(seconds, 1),
        "large_peak_rss_mb": round(peak, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
