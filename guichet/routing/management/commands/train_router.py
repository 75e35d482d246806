from __future__ import annotations

import signal
import sys
import threading
from argparse import ArgumentParser
from pathlib import Path
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from guichet.core.errors import GuichetError
from guichet.routing import training
from guichet.routing.evaluation import ExamplesFileError, rows_read
from guichet.routing.models import RouterModel

_STEPS = {
    "embeddings": "Vecteurs de phrases",
    "cross-validation": "Validation croisée",
    "final model": "Modèle final",
    "comparison": "Comparaison",
}


class _Bars:
    """One tqdm bar per training step; on a terminal only (disable=None)."""

    def __init__(self) -> None:
        self.step = ""
        self.bar: tqdm[Any] | None = None

    def __call__(self, step: str, done: int, total: int) -> None:
        if step != self.step:
            self.close()
            self.step = step
            self.bar = tqdm(
                total=total, desc=_STEPS.get(step, step), file=sys.stderr, disable=None, leave=False
            )
        if self.bar is not None:
            self.bar.n = done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Command(BaseCommand):
    help = "Entraîne le modèle d'orientation, le compare au modèle actif et le promeut s'il n'est pas moins bon."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--examples",
            type=Path,
            metavar="FICHIER.jsonl",
            help="Ajoute d'abord ces exemples étiquetés (format d'evaluate_routing).",
        )
        parser.add_argument(
            "--create-services",
            action="store_true",
            help="Crée comme services les codes du fichier absents de l'annuaire.",
        )
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="Ne fait rien si un modèle est déjà actif (premier démarrage).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Promeut le nouveau modèle même s'il est moins bon.",
        )
        parser.add_argument(
            "--embeddings",
            action="store_true",
            help="Ajoute les vecteurs de phrases multilingues (e5) au modèle : plus robuste aux reformulations, mais 50 à 140 ms par message.",
        )
        parser.add_argument(
            "--sample",
            type=int,
            metavar="N",
            help="N exemples du corpus livré par code au plus (essai rapide).",
        )

    def handle(
        self,
        *args: Any,
        examples: Path | None,
        create_services: bool,
        if_missing: bool,
        force: bool,
        embeddings: bool,
        sample: int | None,
        **options: Any,
    ) -> None:
        if examples is not None:
            try:
                rows = rows_read(examples)
                added = training.examples_import(
                    rows=rows, create_services=create_services, actor="command:train_router"
                )
            except (ExamplesFileError, GuichetError) as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"{added} exemple(s) ajouté(s) depuis {examples}.")
        if if_missing and RouterModel.objects.filter(is_active=True).exists():
            self.stdout.write("Un modèle d'orientation est déjà actif : rien à faire.")
            return
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()
            # A second Ctrl-C stops at once; nothing is written before the end anyway.
            signal.signal(signal.SIGINT, signal.default_int_handler)

        # Signal handlers can only be set from the main thread (not when a task calls us).
        in_main = threading.current_thread() is threading.main_thread()
        previous = (
            {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
            if in_main
            else {}
        )
        bars = _Bars()
        self.stdout.write("Entraînement du modèle d'orientation…")
        try:
            outcome = training.router_train(
                actor="command:train_router",
                progress=bars,
                stop=stop,
                config=training.training_config(use_embeddings=embeddings),
                force=force,
                seed_per_code=max(1, sample) if sample is not None else None,
            )
        except (training.TrainingInterrupted, KeyboardInterrupt) as exc:
            raise CommandError(
                "Entraînement interrompu : aucun modèle n'a été enregistré, le modèle actif reste en place.",
                returncode=130,
            ) from exc
        finally:
            bars.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(
            f"Modèle {outcome.version} : {outcome.trained_on} exemples, {outcome.seconds:.0f} s."
        )
        cv = outcome.cv
        self.stdout.write(
            f"Validation croisée : exactitude {cv.get('accuracy', 0):.3f}, automatique {cv.get('auto_rate', 0):.1%} "
            f"juste à {cv.get('auto_precision', 0):.1%}, ECE {cv.get('ece', 0):.3f}."
        )
        if outcome.candidate:
            c = outcome.candidate
            self.stdout.write(
                f"Comparaison ({c['n']} messages) : exactitude {c['accuracy']:.3f}, F1 macro {c['macro_f1']:.3f}, "
                f"automatique {c['auto_rate']:.1%} juste à {c['auto_precision']:.1%}."
            )
        if outcome.current:
            self.stdout.write(
                f"Modèle actif : exactitude {outcome.current['accuracy']:.3f}, F1 macro {outcome.current['macro_f1']:.3f}."
            )
        verdict = "promu" if outcome.promoted else "conservé sans être promu"
        self.stdout.write(f"Nouveau modèle {verdict} ({outcome.reason}).")
