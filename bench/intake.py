"""Intake benchmark: N emails through SMTP → committed → routed → acknowledgement queued.

    .venv/bin/python bench/intake.py [--messages N] [--concurrency C] [--json]

Everything runs in this process against a fresh, throw-away database:

* SQLite (no DATABASE_URL): a temporary GUICHET_VAR_DIR, removed at the end;
* PostgreSQL (DATABASE_URL set): a database guichet_bench_<pid> created on that server,
  migrated, and dropped at the end (also on Ctrl-C).

Phase 1 (intake): C client threads, one SMTP connection each, send N French messages to the
embedded aiosmtpd intake. The latency of a message is the time of smtplib's `sendmail` on the
open connection (MAIL, RCPT, DATA and the body up to the `250`, which the intake only returns
once the submission is committed). Throughput is accepted messages over the phase's wall time.

Phase 2 (processing): one GuichetWorker runs every ready task until the queue is empty
(parse, open the request, route, queue the acknowledgement in the outbox, then the outbox
delivery of that acknowledgement to Django's in-memory mail backend: no network).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import resource
import shutil
import signal
import smtplib
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ---------------------------------------------------------------------------------------------
# Realistic French mail. Each topic only uses words the keyword router attributes to its own
# service; the shared filler avoids every keyword of the directory (no "en train de", "retard",
# "santé", "mairie", "demande d'intervention"...), so each message has one clear destination.
# ---------------------------------------------------------------------------------------------

TOPICS: dict[str, dict[str, Any]] = {
    "transports": {
        "subjects": [
            "Retard du TER {line} ce matin",
            "TER {line} : retards à répétition",
            "Réclamation : train supprimé sur la ligne {line}",
            "Abonnement TER et retards quotidiens ({line})",
            "Horaires du TER {line} non respectés",
        ],
        "lines": [
            "Lyon - Grenoble",
            "Clermont-Ferrand - Vichy",
            "Saint-Étienne - Lyon",
            "Annecy - Chambéry",
            "Valence - Romans",
            "Bourg-en-Bresse - Lyon",
        ],
        "paragraphs": [
            "Je prends chaque matin le TER de 7 h 12 en gare de {city}. Depuis le début du mois, ce train arrive avec un retard de vingt à quarante minutes, quand il n'est pas purement et simplement supprimé sans que l'affichage en gare ne l'annonce.",
            "Ce matin encore, le TER {line} a accusé un retard de trente-cinq minutes. Aucune annonce n'a été faite sur le quai, et les agents de la SNCF présents n'avaient aucune information à nous donner.",
            "Je suis titulaire d'un abonnement annuel depuis quatre ans. Je paie plus de cinquante euros par mois pour un service dont la régularité se dégrade sans cesse : les horaires affichés ne sont plus qu'indicatifs.",
            "Les correspondances ne sont plus assurées : avec le retard du premier train, je manque systématiquement le car de 8 h 05 et j'arrive en retard à mon travail, ce qui m'a déjà valu deux remarques de mon employeur.",
            "Pouvez-vous m'indiquer si un dédommagement est prévu pour les abonnés, et quelles mesures la Région, autorité organisatrice des TER, compte prendre pour que les horaires soient enfin respectés sur cette ligne ?",
            "Les rames sont par ailleurs bondées : les voyageurs restent debout pendant tout le trajet, y compris les personnes âgées et les familles avec des poussettes, faute de voitures supplémentaires aux heures de pointe.",
        ],
    },
    "lycees": {
        "subjects": [
            "Chauffage en panne au lycée {school}",
            "Lycée {school} : les élèves ont froid",
            "Radiateurs froids dans les salles du lycée {school}",
            "Problème de chauffage - lycée {school}",
        ],
        "schools": [
            "Ampère",
            "Jean Monnet",
            "Blaise Pascal",
            "Vaugelas",
            "du Parc",
            "Marie Curie",
            "Lumière",
        ],
        "paragraphs": [
            "Mon fils est élève de première au lycée {school} à {city}. Depuis la rentrée des vacances, le chauffage ne fonctionne plus dans le bâtiment B : les radiateurs restent froids et la température ne dépasse pas douze degrés le matin.",
            "Les lycéens suivent les cours en manteau, avec bonnet et gants. Plusieurs professeurs ont signalé la situation au proviseur, qui nous a indiqué que la réparation du chauffage relève de la Région, propriétaire des bâtiments du lycée.",
            "À l'internat, la situation est encore plus difficile : les chambres ne sont pas chauffées la nuit et les élèves internes dorment habillés. Certains parents envisagent de reprendre leurs enfants chaque soir.",
            "Nous avons appris qu'une chaudière de remplacement avait été commandée, mais aucune date d'installation ne nous a été communiquée. Pouvez-vous nous indiquer quand le chauffage du lycée sera rétabli ?",
            "Je souhaite également savoir si des radiateurs d'appoint peuvent être installés provisoirement dans les salles les plus froides, au moins pour les classes qui passent des épreuves écrites dans les prochaines semaines.",
        ],
    },
    "jeunesse": {
        "subjects": [
            "Pass'Région non reçu",
            "Carte Pass'Région perdue : que faire ?",
            "Question sur le Pass'Région de ma fille",
            "Pass Région : avantages non crédités",
            "Commande du Pass'Région bloquée",
        ],
        "paragraphs": [
            "J'ai fait la demande du Pass'Région pour ma fille, âgée de seize ans, au mois de septembre. Le dossier apparaît comme validé sur le site, mais nous n'avons toujours pas reçu la carte Pass'Région par courrier.",
            "Sans la carte, ma fille ne peut pas bénéficier des avantages prévus : les places de cinéma, la licence pour son activité du mercredi et surtout les manuels scolaires, que nous avons dû avancer de notre poche.",
            "La carte Pass'Région de mon fils a été perdue lors d'un déménagement. Je voudrais savoir comment la faire bloquer, et s'il est possible d'obtenir une nouvelle carte avec le solde restant sur l'ancienne.",
            "Le solde du Pass'Région affiché dans l'espace personnel ne correspond pas aux avantages annoncés : la somme prévue pour les manuels scolaires n'a pas été créditée, alors que la commande a bien été passée.",
            "J'ai essayé à plusieurs reprises de joindre le service par téléphone, sans succès. Pourriez-vous me dire où en est la commande du Pass'Région et dans quel délai nous pouvons espérer recevoir la carte ?",
        ],
    },
    "europe": {
        "subjects": [
            "Subvention FEDER : versement du solde",
            "Dossier FEDER n° {ref} - demande d'information",
            "Fonds européens : où en est notre dossier {ref} ?",
            "Paiement FEDER non versé - dossier {ref}",
        ],
        "paragraphs": [
            "Notre association porte un projet de rénovation énergétique d'un tiers-lieu, cofinancé par le FEDER dans le cadre du programme opérationnel régional. La convention d'attribution de la subvention FEDER a été signée il y a dix-huit mois.",
            "Nous avons transmis la demande de versement du solde, accompagnée de l'ensemble des pièces justificatives, à l'autorité de gestion au mois de mars. Depuis, nous n'avons reçu qu'un accusé de réception automatique.",
            "Ce paiement FEDER conditionne notre trésorerie : nous avons avancé la totalité des dépenses et notre banque nous demande désormais des garanties que nous ne pouvons pas fournir sans ce versement des fonds européens.",
            "Pourriez-vous nous indiquer à quelle étape de l'instruction se trouve notre dossier FEDER, si des pièces complémentaires sont attendues, et dans quel délai le versement de la subvention européenne peut être envisagé ?",
            "Nous souhaitons par ailleurs déposer un second projet au titre du programme FEDER et aimerions savoir si un appel à projets est prévu cette année, ainsi que les critères d'éligibilité retenus par l'autorité de gestion.",
        ],
    },
}

FILLER = [
    "Je me permets de vous écrire après plusieurs tentatives restées sans réponse, par téléphone comme par le formulaire du site. Je ne doute pas que vos services soient très sollicités, mais la situation dure maintenant depuis plusieurs semaines.",
    "Pour que vous puissiez retrouver facilement ma situation, je vous indique mes coordonnées complètes en fin de message. Je reste joignable en semaine après dix-huit heures, et le samedi matin.",
    "Je vous serais reconnaissant de bien vouloir accuser réception de ce message et de me préciser le nom de la personne qui suit mon dossier, afin que je puisse vous recontacter si nécessaire.",
    "Je précise que j'ai déjà pris contact avec plusieurs interlocuteurs, qui m'ont chacun renvoyé vers un autre service. Je m'adresse donc à vous dans l'espoir d'obtenir enfin une réponse claire et définitive.",
    "Je comprends parfaitement que les moyens soient limités, et je ne cherche pas à mettre en cause les agents, qui font ce qu'ils peuvent. Mais il me semble légitime d'être informé des suites données à ma démarche.",
    "Vous trouverez ci-dessous le détail chronologique des faits, tel que j'ai pu le reconstituer à partir de mes notes et des échanges que j'ai conservés. N'hésitez pas à me demander tout document utile.",
    "Cette situation a des conséquences concrètes sur notre organisation familiale : il nous faut réorganiser les journées, solliciter les grands-parents et parfois poser des jours de congé pour faire face.",
    "Je vous remercie par avance de l'attention que vous porterez à ma demande, et je vous prie de croire que je reste ouvert à toute solution raisonnable qui permettrait de régler ce problème rapidement.",
    "Je me tiens naturellement à votre disposition pour tout renseignement complémentaire, et je peux me déplacer si un rendez-vous au guichet vous semble plus simple pour examiner ma situation.",
    "Je souhaiterais enfin savoir dans quel délai une réponse peut raisonnablement être attendue, et quelles sont les voies de recours possibles si cette réponse ne devait pas me satisfaire.",
    "J'ai bien noté les informations publiées sur votre site, mais elles ne correspondent pas à ma situation particulière, ce qui explique que je prenne la liberté de vous écrire directement.",
    "Je joins à ce message les éléments dont je dispose ; je peux vous transmettre des copies plus lisibles si celles-ci ne vous conviennent pas.",
]

FIRST_NAMES = [
    "Claire",
    "Julien",
    "Amélie",
    "Mohamed",
    "Sophie",
    "Thomas",
    "Inès",
    "Nicolas",
    "Léa",
    "François",
    "Chloé",
    "Karim",
    "Hélène",
    "Mathieu",
    "Céline",
    "Hugo",
    "Nadia",
    "Pierre",
    "Émilie",
    "Yanis",
]
LAST_NAMES = [
    "Dupont",
    "Martin",
    "Bernard",
    "Moreau",
    "Lefèvre",
    "Garcia",
    "Roux",
    "Fournier",
    "Girard",
    "Benali",
    "Mercier",
    "Faure",
    "Blanc",
    "Chevalier",
    "Perrin",
    "Morel",
    "Gauthier",
    "Nguyen",
    "Robin",
    "Masson",
]
DOMAINS = ["orange.fr", "free.fr", "laposte.net", "gmail.com", "sfr.fr", "wanadoo.fr", "exemple.fr"]
CITIES = [
    "Lyon",
    "Grenoble",
    "Clermont-Ferrand",
    "Saint-Étienne",
    "Annecy",
    "Chambéry",
    "Valence",
    "Bourg-en-Bresse",
    "Vichy",
    "Roanne",
]
STREETS = [
    "rue Victor Hugo",
    "avenue Jean Jaurès",
    "place Bellecour",
    "rue de la République",
    "chemin des Vignes",
    "boulevard Gambetta",
]
ATTACHMENT_NAMES = {
    "transports": "justificatif_abonnement.pdf",
    "lycees": "courrier_parents_chauffage.pdf",
    "jeunesse": "attestation_pass_region.pdf",
    "europe": "demande_versement_solde.pdf",
}

BODY_TARGET_CHARS = 5000
ATTACHMENT_BYTES = 100 * 1024


@dataclass(frozen=True)
class Outgoing:
    topic: str
    sender: str
    raw: bytes
    has_attachment: bool


def _strip_accents_ascii(value: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()


def _pdf_like(rng: random.Random, size: int) -> bytes:
    """A PDF-looking file: real header and trailer, incompressible content in between."""
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n3 0 obj\n<< /Length 0 /Filter /FlateDecode >>\nstream\n"
    tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    return head + rng.randbytes(size - len(head) - len(tail)) + tail


def build_message(index: int, *, recipient: str, seed: int = 42) -> Outgoing:
    """The index-th message of the run, deterministic for a given seed."""
    rng = random.Random(seed * 1_000_003 + index)
    topic = list(TOPICS)[index % len(TOPICS)]
    spec = TOPICS[topic]
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    # About one sender in two writes twice: the requester is then reused, as in real life.
    sender = f"{_strip_accents_ascii(first)}.{_strip_accents_ascii(last).replace(' ', '')}{rng.randrange(max(index // 2, 1) + 1)}@{rng.choice(DOMAINS)}"
    city = rng.choice(CITIES)
    fields = {
        "city": city,
        "line": rng.choice(spec.get("lines", [""])),
        "school": rng.choice(spec.get("schools", [""])),
        "ref": f"AURA{rng.randrange(10**6):06d}",
    }
    subject = rng.choice(spec["subjects"]).format(**fields)
    topical = rng.sample(spec["paragraphs"], k=min(3, len(spec["paragraphs"])))
    paragraphs = [topical[0].format(**fields)]
    filler = rng.sample(FILLER, k=len(FILLER))
    extra = [p.format(**fields) for p in topical[1:]]
    # Interleave the topic's paragraphs with neutral ones up to ~5 KB of text.
    while sum(len(p) + 2 for p in paragraphs) < BODY_TARGET_CHARS - 400 and (filler or extra):
        if extra and (not filler or rng.random() < 0.4):
            paragraphs.append(extra.pop())
        else:
            paragraphs.append(filler.pop())
    while sum(len(p) + 2 for p in paragraphs) < BODY_TARGET_CHARS - 400:
        paragraphs.append(rng.choice(FILLER))
    signature = (
        f"{first} {last}\n{rng.randrange(1, 120)} {rng.choice(STREETS)}\n"
        f"{rng.randrange(1, 10)}{rng.randrange(1000, 9999):04d} {city}\n"
        f"06 {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)}"
    )
    body = (
        "Madame, Monsieur,\n\n"
        + "\n\n".join(paragraphs)
        + "\n\nVeuillez agréer, Madame, Monsieur, l'expression de mes salutations distinguées.\n\n"
        + signature
        + "\n"
    )

    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = formataddr((f"{first} {last}", sender))
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(idstring=f"bench{index}", domain=sender.rpartition("@")[2])
    msg.set_content(body)
    has_attachment = index % 10 == 9
    if has_attachment:
        msg.add_attachment(
            _pdf_like(rng, ATTACHMENT_BYTES),
            maintype="application",
            subtype="pdf",
            filename=ATTACHMENT_NAMES[topic],
        )
    return Outgoing(topic=topic, sender=sender, raw=msg.as_bytes(), has_attachment=has_attachment)


# ---------------------------------------------------------------------------------------------
# Fresh database
# ---------------------------------------------------------------------------------------------


@dataclass
class Scratch:
    var_dir: str
    admin_url: str | None = None
    pg_name: str | None = None

    @property
    def database(self) -> str:
        return "postgresql" if self.admin_url else "sqlite"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def pg_create(admin_url: str) -> str:
    import psycopg
    from psycopg import sql

    name = f"guichet_bench_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def pg_drop(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.info.server_version >= 130000:
            # FORCE: the intake's executor threads may still hold idle persistent connections.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        else:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


DRAINING = threading.Event()


@dataclass
class IntakeResult:
    accepted: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _client(
    host: str,
    port: int,
    recipient: str,
    jobs: queue.SimpleQueue[Outgoing],
    barrier: threading.Barrier,
    stop: threading.Event,
    result: IntakeResult,
    finished: list[float],
    lock: threading.Lock,
    bar: tqdm,
) -> None:
    last = 0.0
    try:
        with smtplib.SMTP(host, port, local_hostname="bench.localhost", timeout=120) as smtp:
            smtp.ehlo()
            barrier.wait(timeout=60)
            while not stop.is_set():
                try:
                    job = jobs.get_nowait()
                except queue.Empty:
                    break
                started = time.perf_counter()
                try:
                    smtp.sendmail(job.sender, [recipient], job.raw)
                except smtplib.SMTPServerDisconnected as exc:
                    with lock:
                        result.errors.append(f"{type(exc).__name__}: {exc}")
                    break
                except smtplib.SMTPException as exc:
                    with lock:
                        result.errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    last = time.perf_counter()
                    with lock:
                        result.latencies.append(last - started)
                        result.accepted += 1
                bar.update(1)
    except threading.BrokenBarrierError:
        pass
    except Exception as exc:
        barrier.abort()
        with lock:
            result.errors.append(f"client: {type(exc).__name__}: {exc}")
    finally:
        with lock:
            finished.append(last)


def phase_intake(
    messages: list[Outgoing],
    *,
    host: str,
    port: int,
    recipient: str,
    concurrency: int,
    stop: threading.Event,
) -> IntakeResult:
    jobs: queue.SimpleQueue[Outgoing] = queue.SimpleQueue()
    for message in messages:
        jobs.put(message)
    result = IntakeResult()
    finished: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)
    with tqdm(
        total=len(messages), desc="intake (SMTP)", unit="msg", file=sys.stderr, dynamic_ncols=True
    ) as bar:
        threads = [
            threading.Thread(
                target=_client,
                args=(host, port, recipient, jobs, barrier, stop, result, finished, lock, bar),
                name=f"bench-client-{i}",
                daemon=True,
            )
            for i in range(concurrency)
        ]
        for thread in threads:
            thread.start()
        try:
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            pass
        started = time.perf_counter()
        cpu_started = _cpu_seconds()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except KeyboardInterrupt:
            stop.set()
            for thread in threads:
                thread.join(30)
            raise
    result.cpu_seconds = _cpu_seconds() - cpu_started
    ends = [t for t in finished if t > 0]
    result.seconds = (max(ends) - started) if ends else 0.0
    return result


@dataclass
class DrainResult:
    tasks: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    processing_seconds: float = 0.0


def phase_drain(expected: int, stop: threading.Event) -> DrainResult:
    from django.db.models import Max
    from django.utils import timezone

    from guichet.core.worker import GuichetWorker
    from guichet.intake.models import Submission

    worker = GuichetWorker()
    result = DrainResult()
    wall_start = timezone.now()
    started = time.perf_counter()
    cpu_started = _cpu_seconds()
    # Processing a submission enqueues the delivery of its acknowledgement: ~2 tasks a message.
    with tqdm(
        total=2 * expected, desc="worker drain", unit="task", file=sys.stderr, dynamic_ncols=True
    ) as bar:
        # GuichetWorker.drain() is `while self.run_one()`; the same loop here shows progress
        # and stops between two tasks on Ctrl-C (the task runner swallows KeyboardInterrupt).
        DRAINING.set()
        try:
            while not stop.is_set() and worker.run_one():
                result.tasks += 1
                bar.update(1)
            if stop.is_set():
                raise Interrupted
            result.tasks += worker.drain()
        finally:
            DRAINING.clear()
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = _cpu_seconds() - cpu_started
    last_processed = Submission.objects.aggregate(last=Max("processed_at"))["last"]
    if last_processed is not None:
        result.processing_seconds = max((last_processed - wall_start).total_seconds(), 1e-9)
    return result


def _cpu_seconds() -> float:
    """CPU time of this whole process (clients, SMTP server, worker); not the PostgreSQL server's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(values: list[float], pct: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--messages", "-n", type=int, default=500, help="number of emails (default 500)"
    )
    parser.add_argument(
        "--concurrency", "-c", type=int, default=4, help="SMTP client threads (default 4)"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.concurrency < 1:
        parser.error("--messages and --concurrency must be positive")
    return args


def setup_django(scratch: Scratch) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guichet.settings")
    os.environ.setdefault("GUICHET_DEBUG", "true")
    os.environ.setdefault("GUICHET_LOG_LEVEL", "WARNING")
    os.environ["GUICHET_VAR_DIR"] = scratch.var_dir
    # GUICHET_SMTP_HOST would select a real outgoing SMTP relay: never in a benchmark.
    os.environ.pop("GUICHET_SMTP_HOST", None)
    if scratch.admin_url and scratch.pg_name:
        os.environ["DATABASE_URL"] = _with_database(scratch.admin_url, scratch.pg_name)

    import django
    from django.conf import settings

    # Acknowledgements are "sent" to memory: no network, no files.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    django.setup()


def run(args: argparse.Namespace, scratch: Scratch, stop: threading.Event) -> int:
    from django.conf import settings
    from django.core.management import call_command

    say = print
    say(
        f"Guichet intake benchmark: {args.messages} messages, {args.concurrency} SMTP clients, {scratch.database}"
    )
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    say(f"  migrate: {time.perf_counter() - t0:.1f} s")

    recipient = settings.GUICHET_ACCEPTED_RECIPIENTS[0]
    messages = [build_message(i, recipient=recipient) for i in range(args.messages)]
    sizes = [len(m.raw) for m in messages]
    with_attachment = sum(m.has_attachment for m in messages)
    say(
        f"  generated: {len(messages)} messages, {with_attachment} with a {ATTACHMENT_BYTES // 1024} KB PDF, "
        f"median {statistics.median(sizes) / 1024:.1f} KB, total {sum(sizes) / 1024 / 1024:.1f} MB on the wire"
    )

    from guichet.intake.channels.email.smtpd import smtp_controller

    host = "127.0.0.1"
    port = free_port(host)
    controller = smtp_controller(hostname=host, port=port)
    controller.start()
    try:
        intake = phase_intake(
            messages,
            host=host,
            port=port,
            recipient=recipient,
            concurrency=args.concurrency,
            stop=stop,
        )
    finally:
        controller.stop()
    if stop.is_set():
        raise Interrupted

    from django.core import mail
    from django_tasks_db.models import DBTaskResult

    from guichet.casework.models import Request, RequestStatus
    from guichet.core.models import OutgoingMail
    from guichet.intake.models import Submission

    committed = Submission.objects.count()
    rate = intake.accepted / intake.seconds if intake.seconds else 0.0
    p50 = _percentile(intake.latencies, 50) * 1000
    p95 = _percentile(intake.latencies, 95) * 1000
    say("")
    say("Phase 1 - intake (SMTP → 250 after commit)")
    say(
        f"  accepted (250): {intake.accepted}/{args.messages} in {intake.seconds:.2f} s → {rate:.1f} msg/s"
    )
    say(
        f"  latency end of DATA → 250 (sendmail on open connection): p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(intake.latencies, default=0) * 1000:.1f} ms"
    )
    say(
        f"  submissions committed: {committed}   process CPU: {intake.cpu_seconds / max(intake.accepted, 1) * 1000:.1f} ms/msg"
        " (clients + SMTP server + commit, one process)"
    )
    if intake.errors:
        say(f"  errors: {len(intake.errors)} (first: {intake.errors[0]})")

    drain = phase_drain(committed, stop)
    processed = Submission.objects.filter(status=Submission.Status.PROCESSED).count()
    requests = Request.objects.count()
    routed = Request.objects.filter(status=RequestStatus.ROUTED).count()
    acks = OutgoingMail.objects.filter(kind=OutgoingMail.Kind.ACKNOWLEDGEMENT)
    acks_total = acks.count()
    acks_sent = acks.filter(status=OutgoingMail.Status.SENT).count()
    failed_tasks = DBTaskResult.objects.filter(status="FAILED").count()
    drain_rate = processed / drain.seconds if drain.seconds else 0.0
    process_rate = processed / drain.processing_seconds if drain.processing_seconds else 0.0
    by_service = dict(
        sorted(
            Counter(
                Request.objects.filter(service__isnull=False).values_list(
                    "service__code", flat=True
                )
            ).items()
        )
    )
    say("")
    say(
        "Phase 2 - worker drain (1 thread: parse, open request, route, queue acknowledgement, deliver it)"
    )
    say(
        f"  tasks run: {drain.tasks} in {drain.seconds:.2f} s → {drain_rate:.1f} msg/s (all tasks, acknowledgement delivery to memory included)"
    )
    say(
        f"  routed + acknowledgement queued only: {drain.processing_seconds:.2f} s → {process_rate:.1f} msg/s"
    )
    say(
        f"  submissions processed: {processed}   requests: {requests}   routed: {routed} {by_service}"
    )
    say(
        f"  acknowledgements queued in the outbox: {acks_total} (sent to memory: {acks_sent}, locmem outbox: {len(getattr(mail, 'outbox', []))})"
    )
    say(
        f"  worker CPU: {drain.cpu_seconds / max(processed, 1) * 1000:.1f} ms/msg over {drain.seconds / max(processed, 1) * 1000:.1f} ms/msg of wall time"
        " (the rest: waiting on the database)"
    )
    if failed_tasks:
        say(f"  FAILED tasks: {failed_tasks}")

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say("")
    say(f"Peak RSS: {peak:.0f} MB")

    problems = []
    for label, value in (
        ("submissions processed", processed),
        ("requests", requests),
        ("acknowledgements queued", acks_total),
    ):
        if value != args.messages:
            problems.append(f"{label} {value} != {args.messages}")
    if routed != args.messages:
        say(f"  note: {args.messages - routed} request(s) left for triage by the router")
    for problem in problems:
        print(f"CHECK FAILED: {problem}", file=sys.stderr)
    if not problems:
        say("Checks: OK (processed == requests == acknowledgements == N)")

    if args.json:
        print(
            json.dumps(
                {
                    "messages": args.messages,
                    "concurrency": args.concurrency,
                    "database": scratch.database,
                    "messages_per_s": round(rate, 1),
                    "p50_ms": round(p50, 1),
                    "p95_ms": round(p95, 1),
                    "drain_messages_per_s": round(drain_rate, 1),
                    "peak_rss_mb": round(peak, 1),
                    "process_messages_per_s": round(process_rate, 1),
                    "routed": routed,
                    "errors": len(intake.errors),
                    "intake_cpu_ms_per_msg": round(
                        intake.cpu_seconds / max(intake.accepted, 1) * 1000, 2
                    ),
                    "drain_cpu_ms_per_msg": round(drain.cpu_seconds / max(processed, 1) * 1000, 2),
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
        # While the worker runs a task, only ask it to stop: its task runner catches
        # BaseException, so a KeyboardInterrupt there would just fail the task and go on.
        if not DRAINING.is_set():
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    django_ready = False
    code = 1
    try:
        if scratch.admin_url:
            scratch.pg_name = pg_create(scratch.admin_url)
        setup_django(scratch)
        django_ready = True
        code = run(args, scratch, stop)
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: cleaning up", file=sys.stderr)
        code = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
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
