from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from guichet.routing import training
from guichet.routing.classifier import RouterClassifier
from guichet.routing.evaluation import (
    ExamplesFileError,
    classifier_evaluate,
    report_format,
    rows_read,
)
from guichet.routing.models import RouterModel


class Command(BaseCommand):
    help = "Mesure l'orientation du modèle installé sur un fichier JSONL étiqueté (sans jamais s'entraîner dessus)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", type=Path, metavar="FICHIER.jsonl")
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Un seul objet JSON sur la sortie standard.",
        )

    def handle(self, *args: Any, path: Path, as_json: bool, **options: Any) -> None:
        try:
            rows = rows_read(path)
        except ExamplesFileError as exc:
            raise CommandError(str(exc)) from exc
        if not rows:
            raise CommandError(f"{path} : aucun exemple.")
        classifier = self._classifier()
        with tqdm(total=len(rows), unit="msg", file=sys.stderr, disable=None, leave=False) as bar:
            report = classifier_evaluate(classifier, rows, on_item=lambda: bar.update(1))
        if as_json:
            self.stdout.write(_json_dumps(report))
        else:
            self.stdout.write(report_format(report))

    def _classifier(self) -> RouterClassifier:
        row = RouterModel.objects.filter(is_active=True).first()
        if row is not None:
            try:
                return RouterClassifier.loads(bytes(row.payload))
            except ValueError as exc:
                self.stderr.write(
                    f"Le modèle actif {row.version} est illisible ({exc}) : nouvel entraînement."
                )
        else:
            # A fresh installation: the shipped corpus is the model, trained here once.
            self.stderr.write(
                "Aucun modèle d'orientation actif : entraînement sur le corpus livré (une quinzaine de secondes)…"
            )
        outcome = training.router_train(actor="command:evaluate_routing", force=True)
        self.stderr.write(
            f"Modèle {outcome.version} entraîné en {outcome.seconds:.0f} s et activé."
        )
        stored = RouterModel.objects.get(version=outcome.version)
        return RouterClassifier.loads(bytes(stored.payload))


def _json_dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, sort_keys=False)
