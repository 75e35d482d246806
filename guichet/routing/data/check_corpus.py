#!/usr/bin/env python3
"""Checks the routing corpus: seed/<code>.jsonl and dev.jsonl.

- every line is valid JSON with the keys subject, body, expected, channel (and optional also);
- codes and channels are valid, each seed file holds only its own code;
- counts per code (seed >= 60, dev == 12, holdout == 10);
- no exact duplicate body anywhere;
- no dev or holdout body shares a 12-word sequence with a seed body;
- warns about sentences (>= 8 words) repeated in two different examples.
Exit status 1 on any error.
"""
import json
import pathlib
import re
import sys
from collections import Counter, defaultdict

HERE = pathlib.Path(__file__).resolve().parent
CODES = [
    "lycees", "transports", "jeunesse", "formation", "sanitaire_social", "economie",
    "agriculture", "europe", "environnement", "amenagement", "culture", "sport",
    "tourisme", "enseignement_superieur", "sante", "rh", "finances", "dpo", "cabinet",
    "ext:commune", "ext:departement", "ext:etat", "ext:rectorat", "ext:caf",
    "ext:france_travail",
]
CHANNELS = {"email", "web", "paper"}
REQUIRED = {"subject", "body", "expected", "channel"}
errors = []


def load(path, code=None):
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path.relative_to(HERE)}:{n}"
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"{where}: invalid JSON ({e})")
            continue
        keys = set(d)
        if not REQUIRED <= keys or keys - REQUIRED - {"also"}:
            errors.append(f"{where}: bad keys {sorted(keys)}")
            continue
        if not all(isinstance(d[k], str) for k in REQUIRED):
            errors.append(f"{where}: non-string field")
        if d["expected"] not in CODES:
            errors.append(f"{where}: unknown code {d['expected']!r}")
        if code and d["expected"] != code:
            errors.append(f"{where}: expected {d['expected']!r} in file of {code!r}")
        if d["channel"] not in CHANNELS:
            errors.append(f"{where}: bad channel {d['channel']!r}")
        if not d["body"].strip():
            errors.append(f"{where}: empty body")
        if "also" in d:
            a = d["also"]
            if not isinstance(a, list) or not a or any(x not in CODES for x in a) or d["expected"] in a:
                errors.append(f"{where}: bad also {a!r}")
        rows.append((where, d))
    return rows


def words(text):
    return re.findall(r"\w+", text.lower())


def ngrams(ws, n=12):
    return {tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)}


seed = []
seed_count: Counter[str] = Counter()
for code in CODES:
    f = HERE / "seed" / (code.replace(":", "_") + ".jsonl")
    if not f.exists():
        errors.append(f"missing {f.name}")
        continue
    rows = load(f, code)
    seed += rows
    seed_count[code] = len(rows)
extra = {p.name for p in (HERE / "seed").glob("*.jsonl")} - {c.replace(":", "_") + ".jsonl" for c in CODES}
if extra:
    errors.append(f"unexpected seed files: {sorted(extra)}")

dev = load(HERE / "dev.jsonl") if (HERE / "dev.jsonl").exists() else []
if not dev:
    errors.append("dev.jsonl missing or empty")
dev_count = Counter(d["expected"] for _, d in dev)
# Written by another hand from the directory alone, without seeing seed or dev: a second,
# independent measure of how the router generalises. Never trained on either.
holdout = load(HERE / "holdout.jsonl") if (HERE / "holdout.jsonl").exists() else []
if not holdout:
    errors.append("holdout.jsonl missing or empty")
holdout_count = Counter(d["expected"] for _, d in holdout)

for code in CODES:
    if seed_count[code] < 60:
        errors.append(f"seed {code}: {seed_count[code]} < 60")
    if dev_count[code] != 12:
        errors.append(f"dev {code}: {dev_count[code]} != 12")
    if holdout_count[code] != 10:
        errors.append(f"holdout {code}: {holdout_count[code]} != 10")

# exact duplicate bodies (normalised whitespace/case)
seen: dict[str, str] = {}
for where, d in seed + dev + holdout:
    key = " ".join(d["body"].lower().split())
    if key in seen:
        errors.append(f"duplicate body: {where} = {seen[key]}")
    seen[key] = where

# dev / seed 12-word overlap
seed_grams = defaultdict(list)
for where, d in seed:
    for g in ngrams(words(d["body"])):
        seed_grams[g].append(where)
for where, d in dev + holdout:
    hits = {w for g in ngrams(words(d["body"])) for w in seed_grams.get(g, [])}
    if hits:
        errors.append(f"{where} shares a 12-word sequence with {sorted(hits)[:3]}")

# repeated sentences (warning only)
sent_where = defaultdict(set)
for where, d in seed + dev:
    for s in re.split(r"(?<=[.!?])\s+|\n+", d["body"]):
        ws = words(s)
        if len(ws) >= 8:
            sent_where[" ".join(ws)].add(where)
warnings = [(s, w) for s, w in sent_where.items() if len(w) > 1]

print("code                    seed  dev  holdout")
for code in CODES:
    print(f"{code:22s} {seed_count[code]:5d} {dev_count[code]:4d} {holdout_count[code]:8d}")
print(f"{'TOTAL':22s} {sum(seed_count.values()):5d} {len(dev):4d} {len(holdout):8d}")
chan = Counter(d["channel"] for _, d in seed + dev)
print("channels:", dict(chan), "| with also:", sum("also" in d for _, d in seed + dev),
      "| empty subjects:", sum(not d["subject"].strip() for _, d in seed + dev))
for s, w in warnings:
    print(f"WARNING repeated sentence in {sorted(w)}: {s[:80]}")
for e in errors:
    print("ERROR", e)
print("OK" if not errors else f"{len(errors)} error(s)")
sys.exit(1 if errors else 0)
