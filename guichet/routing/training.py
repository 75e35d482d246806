"""Training the router: from the shipped corpus, the directory and agents' corrections to a
versioned model in the database, promoted only when it is not worse than the current one."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from guichet.core.audit import audit_log
from guichet.core.errors import GuichetError
from guichet.directory.models import Authority, Service
from guichet.routing.classifier import (
    E5Embedder,
    Embedder,
    Example,
    RouterClassifier,
    TrainingConfig,
    embedder_for,
    fit_classifier,
    model_version_for,
)
from guichet.routing.evaluation import SUMMARY_KEYS, LabelledRow, classifier_evaluate, rows_read
from guichet.routing.models import LabelledExample, RouterModel

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
SEED_DIR = DATA_DIR / "seed"
DEV_PATH = DATA_DIR / "dev.jsonl"
#: Seed examples per code used at most; None for all. Tests lower it to train in seconds.
SEED_SAMPLE_PER_CODE: int | None = None
#: Corrections newer than this take part in the promotion check.
RECENT_CORRECTIONS = timedelta(days=90)
#: Weight of an agent's correction against a seed example: it is real mail of this Région.
CORRECTION_WEIGHT = 2.0
#: Directory descriptions are prose about a service, not mail: they seed, they do not lead.
DIRECTORY_WEIGHT = 0.5
#: Largest drop in accuracy on the comparison set that still counts as "not worse": one
#: message in two hundred is noise between two trainings of equal quality.
PROMOTION_TOLERANCE = 0.005

Progress = Callable[[str, int, int], None]


class TrainingInterrupted(GuichetError):
    def __init__(self) -> None:
        super().__init__(
            "Entraînement interrompu : aucun modèle n'a été enregistré.", code="interrupted"
        )


# ---- examples ----------------------------------------------------------------------------


def seed_rows(*, per_code: int | None = None) -> list[LabelledRow]:
    """The French seed corpus shipped with Guichet, one file per code."""
    per_code = SEED_SAMPLE_PER_CODE if per_code is None else per_code
    rows: list[LabelledRow] = []
    for path in sorted(SEED_DIR.glob("*.jsonl")):
        file_rows = rows_read(path)
        rows.extend(file_rows[:per_code] if per_code else file_rows)
    return rows


def dev_rows() -> list[LabelledRow]:
    """The shipped dev set: evaluation only, never trained on."""
    return rows_read(DEV_PATH) if DEV_PATH.exists() else []


def directory_codes() -> dict[str, Service | Authority]:
    entries: dict[str, Service | Authority] = {
        s.code: s for s in Service.objects.filter(is_active=True)
    }
    entries.update({a.code: a for a in Authority.objects.filter(is_active=True)})
    return entries


def directory_examples(entries: dict[str, Service | Authority]) -> list[Example]:
    """Cold start: each entry's name, description and keywords as extra training text."""
    examples = []
    for code, entry in entries.items():
        examples.append(
            Example(subject=entry.name, body=entry.description, code=code, weight=DIRECTORY_WEIGHT)
        )
        keywords = [str(k) for k in (entry.keywords or [])]
        if keywords:
            examples.append(
                Example(
                    subject=entry.name, body=", ".join(keywords), code=code, weight=DIRECTORY_WEIGHT
                )
            )
    return examples


def training_examples(
    *, entries: dict[str, Service | Authority] | None = None, seed_per_code: int | None = None
) -> list[Example]:
    """Everything the router learns from, restricted to the directory's active codes."""
    entries = directory_codes() if entries is None else entries
    examples = [
        Example(r.subject, r.body, r.expected)
        for r in seed_rows(per_code=seed_per_code)
        if r.expected in entries
    ]
    examples += directory_examples(entries)
    for stored in LabelledExample.objects.filter(code__in=list(entries)).only(
        "subject", "body", "code", "source"
    ):
        weight = CORRECTION_WEIGHT if stored.source == LabelledExample.Source.CORRECTION else 1.0
        examples.append(Example(stored.subject, stored.body, stored.code, weight))
    return examples


GENERIC_DESCRIPTION = "Service créé par l'import d'exemples étiquetés ; description à compléter par un administrateur."


def examples_import(*, rows: Sequence[LabelledRow], create_services: bool, actor: str) -> int:
    """Store labelled examples from a Région's archive; unknown codes are refused unless
    ``create_services`` adds them as services (a Région with its own organisation chart)."""
    known = set(directory_codes())
    unknown = sorted({r.expected for r in rows} - known)
    if unknown and not create_services:
        raise GuichetError(
            f"Codes absents de l'annuaire : {', '.join(unknown[:20])}{' …' if len(unknown) > 20 else ''}. "
            "Ajoutez-les à l'annuaire, corrigez le fichier, ou relancez avec --create-services pour les créer comme services.",
            code="unknown_codes",
        )
    bad_authorities = [code for code in unknown if code.startswith("ext:")]
    if bad_authorities:
        # An outside authority needs a real address before anything is transmitted to it.
        raise GuichetError(
            f"Autorités extérieures inconnues : {', '.join(bad_authorities)}. Créez-les dans l'annuaire avec leur adresse.",
            code="unknown_authorities",
        )
    with transaction.atomic():
        for code in unknown:
            service = Service.objects.create(
                code=code[:60],
                name=code.replace("_", " ").capitalize()[:200],
                description=GENERIC_DESCRIPTION,
                email=f"{code.replace('_', '-')[:40]}@invalid.localhost",
            )
            audit_log(
                actor=actor,
                verb="service.create",
                obj=service,
                after={"code": code, "from": "train_router --examples"},
            )
        # Importing the same archive twice must not count its examples twice.
        seen = set(
            LabelledExample.objects.filter(source=LabelledExample.Source.IMPORT).values_list(
                "subject", "body", "code"
            )
        )
        fresh = []
        for r in rows:
            key = (r.subject[:500], r.body, r.expected)
            if key not in seen:
                seen.add(key)
                fresh.append(
                    LabelledExample(
                        subject=key[0],
                        body=r.body,
                        code=r.expected,
                        source=LabelledExample.Source.IMPORT,
                    )
                )
        LabelledExample.objects.bulk_create(fresh, batch_size=1000)
    return len(fresh)


# ---- embeddings cache --------------------------------------------------------------------


class CachingEmbedder:
    """Keeps sentence vectors on disk by text hash, so retraining only embeds new examples."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.path = path
        self._vectors: dict[str, np.ndarray] | None = None
        self._dirty = False

    def _load(self) -> dict[str, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            try:
                with np.load(self.path, allow_pickle=False) as stored:
                    keys, matrix = stored["keys"], stored["vectors"]
                    self._vectors = {str(k): matrix[i] for i, k in enumerate(keys)}
            except (OSError, KeyError, ValueError):
                pass  # no cache yet, or a damaged one: it is only a cache
        return self._vectors

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8", "replace"), usedforsecurity=False).hexdigest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._load()
        keys = [self._key(t) for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in vectors]
        if missing:
            fresh = self.inner.embed([texts[i] for i in missing])
            for i, vector in zip(missing, fresh, strict=True):
                vectors[keys[i]] = vector
            self._dirty = True
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.vstack([vectors[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        if not self._dirty or self._vectors is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._vectors), dtype="U40")
        matrix = np.vstack(list(self._vectors.values())).astype(np.float32)
        partial = self.path.with_suffix(".partial.npz")
        np.savez(partial, keys=keys, vectors=matrix)
        partial.replace(self.path)  # atomic: a Ctrl-C never leaves half a cache
        self._dirty = False


def _embedder() -> CachingEmbedder:
    path = Path(settings.VAR_DIR) / "routing" / f"embeddings-{E5Embedder.name}.npz"
    return CachingEmbedder(embedder_for(E5Embedder.name), path)


# ---- training and promotion --------------------------------------------------------------


@dataclass
class TrainOutcome:
    version: str
    promoted: bool
    reason: str
    trained_on: int
    seconds: float
    candidate: dict[str, Any] = field(default_factory=dict)
    current: dict[str, Any] = field(default_factory=dict)
    cv: dict[str, float] = field(default_factory=dict)


def comparison_rows() -> list[LabelledRow]:
    """Dev set plus the corrections of the last months: what a new model must not do worse on."""
    rows = dev_rows()
    since = timezone.now() - RECENT_CORRECTIONS
    corrections = LabelledExample.objects.filter(
        source=LabelledExample.Source.CORRECTION, created_at__gte=since
    )
    rows += [
        LabelledRow(c.subject, c.body, c.code) for c in corrections.order_by("-created_at")[:1000]
    ]
    return rows


def training_config(*, use_embeddings: bool = False) -> TrainingConfig:
    """The training settings of this installation."""
    return TrainingConfig(
        use_embeddings=use_embeddings, target_precision=settings.GUICHET_ROUTING_TARGET_PRECISION
    )


def router_train(
    *,
    actor: str = "system",
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    config: TrainingConfig | None = None,
    force: bool = False,
    seed_per_code: int | None = None,
) -> TrainOutcome:
    """Train a candidate, compare it with the active model, store it, promote it if not worse.

    Nothing is written before the end, in one transaction: an interrupted run leaves the
    database as it was.
    """
    started = time.perf_counter()
    entries = directory_codes()
    examples = training_examples(entries=entries, seed_per_code=seed_per_code)
    config = config or training_config()
    embedder = _embedder() if config.use_embeddings else None

    def report(step: str, done: int, total: int) -> None:
        if stop is not None and stop.is_set():
            raise TrainingInterrupted()
        if progress is not None:
            progress(step, done, total)

    version = model_version_for(examples, config)
    try:
        candidate = fit_classifier(
            examples, version=version, config=config, embedder=embedder, progress=report
        )
        report("comparison", 0, 2)
        rows = [r for r in comparison_rows() if r.expected in entries]
        # Batch and through the cache: the dev set is embedded once per installation.
        candidate_report = (
            _summary(classifier_evaluate(candidate, rows, batch=True, embedder=embedder))
            if rows
            else {}
        )
        report("comparison", 1, 2)
        current_row = RouterModel.objects.filter(is_active=True).first()
        current = _load_quietly(current_row)
        current_report = {}
        if current is not None and rows:
            current_embedder = (
                embedder
                if embedder is not None and current.embedder_name == embedder.name
                else None
            )
            current_report = _summary(
                classifier_evaluate(current, rows, batch=True, embedder=current_embedder)
            )
        report("comparison", 2, 2)
    finally:
        if embedder is not None:
            embedder.save()
    promoted, reason = _should_promote(
        candidate_report, current_report, has_current=current is not None, force=force
    )
    metrics = {
        "cv": candidate.cv_metrics,
        "comparison": candidate_report,
        "current": current_report,
        "compared_on": len(rows),
        "reason": reason,
    }
    with transaction.atomic():
        stored = RouterModel.objects.create(
            version=version,
            payload=candidate.dumps(),
            metrics=metrics,
            trained_on=candidate.trained_on,
            is_active=False,
        )
        if promoted:
            router_model_activate(model=stored, actor=actor)
        audit_log(
            actor=actor,
            verb="router_model.train",
            obj=stored,
            after={"promoted": promoted, "reason": reason, **candidate_report},
        )
    return TrainOutcome(
        version=version,
        promoted=promoted,
        reason=reason,
        trained_on=candidate.trained_on,
        seconds=round(time.perf_counter() - started, 1),
        candidate=candidate_report,
        current=current_report,
        cv=candidate.cv_metrics,
    )


def router_model_activate(*, model: RouterModel, actor: str) -> None:
    """Make one stored model the active one (a manual rollback uses this too)."""
    with transaction.atomic():
        previous = list(
            RouterModel.objects.select_for_update().filter(is_active=True).exclude(pk=model.pk)
        )
        RouterModel.objects.filter(pk__in=[p.pk for p in previous]).update(is_active=False)
        model.is_active = True
        model.save(update_fields=["is_active"])
        audit_log(
            actor=actor,
            verb="router_model.activate",
            obj=model,
            before={"active": [p.version for p in previous]},
            after={"active": model.version},
        )


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in SUMMARY_KEYS}


def _should_promote(
    candidate: dict[str, Any], current: dict[str, Any], *, has_current: bool, force: bool
) -> tuple[bool, str]:
    if force:
        return True, "promotion forcée"
    if not has_current:
        return True, "premier modèle"
    if not candidate or not current:
        return True, "aucun exemple de comparaison"
    if candidate["accuracy"] < current["accuracy"] - PROMOTION_TOLERANCE:
        return (
            False,
            f"exactitude en baisse ({candidate['accuracy']:.3f} < {current['accuracy']:.3f})",
        )
    if candidate["macro_f1"] < current["macro_f1"] - 2 * PROMOTION_TOLERANCE:
        return (
            False,
            f"F1 macro en baisse ({candidate['macro_f1']:.3f} < {current['macro_f1']:.3f})",
        )
    return (
        True,
        f"pas moins bon : exactitude {candidate['accuracy']:.3f} contre {current['accuracy']:.3f}",
    )


def _load_quietly(row: RouterModel | None) -> RouterClassifier | None:
    if row is None:
        return None
    try:
        return RouterClassifier.loads(bytes(row.payload))
    except ValueError:
        logger.exception(
            "Active router model %s is unreadable; any new model will replace it", row.version
        )
        return None


def labelled_example_record(*, request: Any, code: str) -> LabelledExample:
    """A manual dispatch or reassignment becomes a training example (call it on commit of
    the human routing decision)."""
    return LabelledExample.objects.create(
        subject=(request.subject or "")[:500],
        body=request.body_text or "",
        code=code,
        source=LabelledExample.Source.CORRECTION,
        request=request,
    )
