"""Routing benchmark: the issue's figures on the shipped dev set, from a fresh installation.

    .venv/bin/python bench/routing.py [--json] [--dev FILE.jsonl] [--embeddings]

1. In a throw-away SQLite installation (a temporary GUICHET_VAR_DIR, removed at the end),
   train the router from the shipped corpus as `guichet train_router` does on first start,
   embeddings included and no cache: that is the training time.
2. In a fresh child process pinned to one thread (OMP_NUM_THREADS=1), load the active model
   from the database (load time, and the resident memory it adds, sentence encoder included),
   then route every dev message one at a time, as intake does (latency per message).

The dev set is never trained on. With --json the last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS = {
    "accuracy": (">=", 0.90),
    "macro_f1": (">=", 0.88),
    "auto_rate": (">=", 0.80),
    "auto_precision": (">=", 0.97),
    "ext_recall": (">=", 0.90),
    "latency_ms_p95": ("<=", 50.0),
    "model_load_s": ("<=", 2.0),
    "model_rss_mb": ("<=", 300.0),
    "train_s": ("<=", 60.0),
}


def setup_django(var_dir: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "guichet.settings"
    os.environ.setdefault("GUICHET_DEBUG", "true")
    os.environ.setdefault("GUICHET_LOG_LEVEL", "WARNING")
    os.environ["GUICHET_VAR_DIR"] = var_dir
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()


def _rss_mb() -> float:
    """Current resident set size (not the peak), from /proc where there is one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(var_dir: str, dev_path: Path) -> dict[str, Any]:
    """Child process: load the active model and route the dev set one message at a time."""
    setup_django(var_dir)
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
    parser.add_argument("--measure", metavar="VAR_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.dev)), flush=True)
        return 0

    var_dir = tempfile.mkdtemp(prefix="guichet-bench-routing-")
    try:
        return _run(args, var_dir)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def _run(args: argparse.Namespace, var_dir: str) -> int:
    setup_django(var_dir)
    from django.core.management import call_command

    from guichet.routing.classifier import TrainingConfig
    from guichet.routing.training import router_train

    print(
        f"Guichet routing benchmark: dev set {args.dev.name}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    call_command("migrate", verbosity=0, interactive=False)
    start = time.perf_counter()
    outcome = router_train(
        actor="bench", force=True, config=TrainingConfig(use_embeddings=args.embeddings)
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
        [sys.executable, __file__, "--measure", var_dir, "--dev", str(args.dev)],
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
    }
    for key, label in labels.items():
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
        ]
        print(json.dumps({k: report[k] for k in keys}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
