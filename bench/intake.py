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
import platform
import queue
import random
import resource
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ---------------------------------------------------------------------------------------------
# Realistic French mail. Each topic only uses words the keyword router attributes to its own
# service; the shared sentences avoid every keyword of the directory (no "en train de",
# "retard", "santé", "mairie", "demande d'intervention"...), so each message has one clear
# destination. Most of a body is a dated log of incidents with its own dates, numbers and
# names: two citizens writing about the same topic share phrasing, not whole paragraphs, so
# the campaign detector (near-identical requests) sees individual messages, as in real life.
# ---------------------------------------------------------------------------------------------

TOPICS: dict[str, dict[str, Any]] = {
    "transports": {
        "subjects": [
            "Retard du TER {line} ce matin",
            "TER {line} : retards à répétition",
            "Réclamation : train supprimé sur la ligne {line}",
            "Abonnement TER et retards quotidiens ({line})",
            "Horaires du TER {line} non respectés",
            "Encore un TER supprimé entre {line}",
        ],
        "intros": [
            "Je prends chaque matin le TER de {hh} h {mm} en gare de {city} pour rejoindre mon travail. Depuis {since}, ce train arrive régulièrement avec un retard important, quand il n'est pas supprimé sans que l'affichage ne l'annonce.",
            "Abonné depuis {years} ans sur la ligne {line}, je n'ai jamais connu une telle dégradation : les horaires affichés ne sont plus qu'indicatifs et les suppressions de TER sont devenues hebdomadaires.",
            "Je me permets de vous écrire au sujet du TER {line}, que j'emprunte matin et soir avec mon abonnement annuel. Les retards s'accumulent depuis {since} et personne ne semble en mesure de nous expliquer pourquoi.",
        ],
        "events": [
            "le {date}, le TER de {hh} h {mm} est arrivé à {city} avec {n} minutes de retard",
            "le {date}, train de {hh} h {mm} supprimé, annonce faite {k} minutes avant le départ prévu",
            "le {date}, arrêt de {n} minutes en pleine voie après {town}, sans aucune explication à bord",
            "le {date}, seulement {k} voitures au lieu de {k2} : une bonne partie des voyageurs est restée debout jusqu'à {city}",
            "le {date}, correspondance manquée à {town} ; arrivée au bureau à {hh} h {mm} au lieu de {hh2} h",
            "le {date}, retard de {n} minutes annoncé en gare de {town}, finalement {n2} minutes à l'arrivée",
            "le {date}, départ de {town} à {hh} h {mm} pour un horaire prévu à {hh2} h {mm2}",
            "le {date}, aucun contrôleur à bord et portes bloquées {k} minutes à {town}",
        ],
        "asks": [
            "Pouvez-vous m'indiquer si un dédommagement est prévu pour les abonnés, et quelles mesures la Région compte prendre pour que les horaires du TER soient enfin respectés ?",
            "Je souhaite savoir quelles suites la Région, autorité organisatrice des TER, entend donner à ces retards, et si la gratuité d'un mois d'abonnement peut être envisagée.",
            "Je vous demande de bien vouloir transmettre ce relevé à la SNCF et de me faire savoir ce qui sera fait pour la régularité de cette ligne.",
        ],
    },
    "lycees": {
        "subjects": [
            "Chauffage en panne au lycée {school}",
            "Lycée {school} : les élèves ont froid",
            "Radiateurs froids dans les salles du lycée {school}",
            "Problème de chauffage - lycée {school} de {city}",
        ],
        "intros": [
            "Mon enfant est élève de {grade} au lycée {school} à {city}. Depuis {since}, le chauffage fonctionne très mal dans plusieurs bâtiments et les radiateurs restent froids une bonne partie de la journée.",
            "En tant que représentant des parents d'élèves du lycée {school} de {city}, je vous écris au sujet du chauffage, défaillant depuis {since}, malgré plusieurs signalements au proviseur.",
            "Je vous alerte sur la situation du lycée {school} à {city} : les lycéens suivent les cours en manteau depuis {since}, faute de chauffage dans les salles.",
        ],
        "events": [
            "le {date} à {hh} h {mm}, {t} °C relevés en salle {room}",
            "le {date}, chauffage coupé dans le bâtiment {bat} de {hh} h à {hh2} h",
            "le {date}, {n} élèves de {grade} renvoyés en étude, la salle {room} étant à {t} °C",
            "le {date}, radiateurs froids au {floor} étage du bâtiment {bat}, {t} °C à l'ouverture",
            "le {date}, l'internat n'était pas chauffé : {t} °C dans la chambre de mon enfant à {hh} h",
            "le {date}, intervention d'un technicien annoncée pour {hh} h {mm}, personne n'est venu",
            "le {date}, devoir surveillé de {k} heures passé en manteau en salle {room} ({t} °C)",
        ],
        "asks": [
            "Pouvez-vous nous indiquer quand le chauffage du lycée sera rétabli, et si des radiateurs d'appoint peuvent être installés provisoirement dans les salles les plus froides ?",
            "La Région étant propriétaire des bâtiments du lycée, je vous demande de faire réparer le chauffage dans les meilleurs délais et de nous tenir informés du calendrier.",
            "Je souhaite savoir quelles mesures sont prévues pour le chauffage du lycée avant les épreuves écrites des prochaines semaines.",
        ],
    },
    "jeunesse": {
        "subjects": [
            "Pass'Région non reçu",
            "Carte Pass'Région perdue : que faire ?",
            "Question sur le Pass'Région de mon enfant",
            "Pass Région : avantages non crédités",
            "Commande du Pass'Région bloquée depuis {since}",
        ],
        "intros": [
            "J'ai commandé le Pass'Région pour mon enfant, âgé de {age} ans, {since}. Le dossier apparaît comme validé dans l'espace personnel, mais la carte Pass'Région n'est jamais arrivée.",
            "La carte Pass'Région de mon enfant a été perdue {since}. Je voudrais la faire bloquer et obtenir une nouvelle carte avec le solde restant sur l'ancienne.",
            "Le solde du Pass'Région affiché dans l'espace personnel de mon enfant ne correspond pas aux avantages annoncés, en particulier pour les manuels scolaires.",
        ],
        "events": [
            "le {date}, commande du Pass'Région validée, numéro de dossier {ref}",
            "le {date}, appel au service Pass'Région : {n} minutes d'attente, puis coupure",
            "le {date}, message envoyé depuis l'espace personnel (référence {ref}), sans réponse",
            "le {date}, achat des manuels scolaires pour {amount} €, avancés faute de carte",
            "le {date}, solde affiché de {amount} € au lieu des {amount2} € annoncés",
            "le {date}, nouvelle relance par téléphone à {hh} h {mm}, {n} minutes d'attente",
            "le {date}, la carte Pass'Région a été refusée en caisse pour un montant de {amount} €",
        ],
        "asks": [
            "Pourriez-vous me dire où en est la commande du Pass'Région et dans quel délai nous pouvons espérer recevoir la carte ?",
            "Je vous remercie de faire bloquer la carte Pass'Région perdue et de m'indiquer la marche à suivre pour en obtenir une nouvelle.",
            "Je souhaite que les avantages du Pass'Région, notamment pour les manuels scolaires, soient crédités comme prévu.",
        ],
    },
    "europe": {
        "subjects": [
            "Subvention FEDER : versement du solde",
            "Dossier FEDER n° {ref} - demande d'information",
            "Fonds européens : où en est notre dossier {ref} ?",
            "Paiement FEDER non versé - dossier {ref}",
        ],
        "intros": [
            "Notre association porte un projet cofinancé par le FEDER dans le cadre du programme opérationnel régional (dossier {ref}). La convention d'attribution de la subvention FEDER a été signée {since}.",
            "Je vous écris au nom de notre structure, bénéficiaire d'une subvention FEDER de {amount} € (dossier {ref}), dont le solde n'a toujours pas été versé.",
            "Nous avons transmis à l'autorité de gestion la demande de versement du solde de notre dossier FEDER {ref}, avec l'ensemble des pièces justificatives, {since}.",
        ],
        "events": [
            "le {date}, envoi de l'état récapitulatif des dépenses ({amount} €)",
            "le {date}, dépôt de la pièce justificative n° {n} ({doc})",
            "le {date}, relance par courriel auprès du service instructeur du FEDER, sans réponse",
            "le {date}, échange téléphonique avec {person}, qui annonce un versement sous {k} semaines",
            "le {date}, demande de pièce complémentaire ({doc}), transmise le lendemain",
            "le {date}, acompte de {amount} € reçu sur les {amount2} € attendus",
            "le {date}, courrier recommandé n° {ref} adressé à l'autorité de gestion des fonds européens",
        ],
        "asks": [
            "Pourriez-vous nous indiquer à quelle étape de l'instruction se trouve notre dossier FEDER, et dans quel délai le versement du solde peut être envisagé ?",
            "Ce paiement FEDER conditionne notre trésorerie : nous vous remercions de nous dire si des pièces manquent encore et quand les fonds européens seront versés.",
            "Nous souhaitons connaître le calendrier de versement de la subvention FEDER et le nom de la personne qui suit le dossier à l'autorité de gestion.",
        ],
    },
}

# Neutral sentences (no directory keyword), a few of which end up in every message.
COMMON = [
    "Je me permets de vous écrire après plusieurs tentatives restées sans réponse.",
    "Je reste joignable en semaine après {hh} heures, et le samedi matin.",
    "Je vous serais reconnaissant de bien vouloir accuser réception de ce message.",
    "J'ai déjà pris contact avec plusieurs interlocuteurs, qui m'ont chacun renvoyé vers un autre service.",
    "Je ne cherche pas à mettre en cause les agents, qui font ce qu'ils peuvent.",
    "Cette situation a des conséquences concrètes sur notre organisation familiale.",
    "Je peux vous transmettre tout document utile si vous en avez besoin.",
    "Je souhaiterais savoir dans quel délai une réponse peut raisonnablement être attendue.",
    "Les informations publiées sur votre site ne correspondent pas à ma situation.",
    "Je me tiens à votre disposition pour tout renseignement complémentaire.",
]
LOG_INTROS = [
    "Voici le relevé que je tiens depuis {since} :",
    "Pour que vous puissiez vérifier, voici les faits notés au jour le jour :",
    "Je vous détaille ci-dessous ce que j'ai constaté :",
    "Relevé des incidents (heures notées sur le moment) :",
]
CLOSINGS = [
    "Veuillez agréer, Madame, Monsieur, l'expression de mes salutations distinguées.",
    "Je vous prie d'agréer, Madame, Monsieur, mes salutations respectueuses.",
    "Dans l'attente de votre réponse, je vous adresse mes sincères salutations.",
    "Bien cordialement,",
]
GREETINGS = [
    "Madame, Monsieur,",
    "Bonjour,",
    "Madame la Présidente, Monsieur le Président,",
    "Madame, Monsieur, bonjour,",
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
    "Sandrine",
    "Bruno",
    "Fatima",
    "Loïc",
    "Agnès",
    "Rachid",
    "Manon",
    "Olivier",
    "Laure",
    "Damien",
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
    "Bonnet",
    "Dumas",
    "Lambert",
    "Rousseau",
    "Vincent",
    "Muller",
    "Fontaine",
    "Brun",
    "Colin",
    "Arnaud",
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
    "Aurillac",
    "Le Puy-en-Velay",
    "Montluçon",
    "Villefranche-sur-Saône",
]
TOWNS = [
    "Ambérieu",
    "Voiron",
    "Rives",
    "Moirans",
    "Vienne",
    "Givors",
    "Brioude",
    "Issoire",
    "Riom",
    "Aix-les-Bains",
    "Culoz",
    "Firminy",
    "Saint-Chamond",
    "Tarare",
    "Montbrison",
    "Thiers",
    "Pontcharra",
    "Grésy",
]
LINES = [
    "Lyon - Grenoble",
    "Clermont-Ferrand - Vichy",
    "Saint-Étienne - Lyon",
    "Annecy - Chambéry",
    "Valence - Romans",
    "Bourg-en-Bresse - Lyon",
    "Clermont-Ferrand - Aurillac",
    "Lyon - Roanne",
]
SCHOOLS = [
    "Ampère",
    "Jean Monnet",
    "Blaise Pascal",
    "Vaugelas",
    "du Parc",
    "Marie Curie",
    "Lumière",
    "Simone Weil",
    "Camille Claudel",
    "Jean Zay",
]
GRADES = ["seconde", "première", "terminale", "CAP", "BTS"]
DOCS = [
    "relevé de dépenses",
    "attestation de fin d'opération",
    "rapport d'exécution",
    "attestation de cofinancement",
    "tableau des dépenses de personnel",
    "photographies de l'opération",
    "attestation de publicité",
]
MONTHS = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
]
WEEKDAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi"]
STREETS = [
    "rue Victor Hugo",
    "avenue Jean Jaurès",
    "place Bellecour",
    "rue de la République",
    "chemin des Vignes",
    "boulevard Gambetta",
    "allée des Tilleuls",
    "impasse du Moulin",
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


def _ascii_slug(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum()).lower()


def _pdf_like(rng: random.Random, size: int) -> bytes:
    """A PDF-looking file: real header and trailer, incompressible content in between."""
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n3 0 obj\n<< /Length 0 /Filter /FlateDecode >>\nstream\n"
    tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    return head + rng.randbytes(size - len(head) - len(tail)) + tail


class _Slots(dict[str, str]):
    """Template values drawn afresh at each use, so two sentences rarely share their details."""

    def __init__(self, rng: random.Random, fixed: dict[str, str]) -> None:
        super().__init__(fixed)
        self.rng = rng

    def __missing__(self, key: str) -> str:
        rng = self.rng
        draw = {
            "date": lambda: f"{rng.choice(WEEKDAYS)} {rng.randrange(1, 29)} {rng.choice(MONTHS)}",
            "hh": lambda: str(rng.randrange(6, 19)),
            "hh2": lambda: str(rng.randrange(6, 19)),
            "mm": lambda: f"{rng.randrange(60):02d}",
            "mm2": lambda: f"{rng.randrange(60):02d}",
            "n": lambda: str(rng.randrange(5, 95)),
            "n2": lambda: str(rng.randrange(5, 95)),
            "k": lambda: str(rng.randrange(2, 9)),
            "k2": lambda: str(rng.randrange(4, 12)),
            "t": lambda: f"{rng.randrange(90, 170) / 10:.1f}".replace(".", ","),
            "room": lambda: f"{rng.choice('ABCDEF')}{rng.randrange(1, 4)}{rng.randrange(1, 30):02d}",
            "bat": lambda: rng.choice("ABCDEFGH"),
            "floor": lambda: rng.choice(["premier", "deuxième", "troisième"]),
            "grade": lambda: rng.choice(GRADES),
            "town": lambda: rng.choice(TOWNS),
            "amount": lambda: f"{rng.randrange(40, 90000):,}".replace(",", " "),
            "amount2": lambda: f"{rng.randrange(40, 90000):,}".replace(",", " "),
            "ref": lambda: f"{rng.choice(['AURA', 'PR', 'RA', 'DOS'])}-{rng.randrange(10**6):06d}",
            "doc": lambda: rng.choice(DOCS),
            "person": lambda: f"{rng.choice(['Mme', 'M.'])} {rng.choice(LAST_NAMES)}",
        }
        return draw[key]()


def build_message(index: int, *, recipient: str, seed: int = 42) -> Outgoing:
    """The index-th message of the run, deterministic for a given seed."""
    rng = random.Random(seed * 1_000_003 + index)
    topic = list(TOPICS)[index % len(TOPICS)]
    spec = TOPICS[topic]
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    sender = (
        f"{_ascii_slug(first)}.{_ascii_slug(last)}{rng.randrange(100, 10000)}@{rng.choice(DOMAINS)}"
    )
    city = rng.choice(CITIES)
    slots = _Slots(
        rng,
        {
            "city": city,
            "line": rng.choice(LINES),
            "school": rng.choice(SCHOOLS),
            "since": rng.choice(
                [
                    "le début du mois",
                    "la rentrée",
                    "les vacances",
                    f"le {rng.randrange(1, 29)} {rng.choice(MONTHS)}",
                    "plusieurs semaines",
                    "trois mois",
                ]
            ),
            "years": str(rng.randrange(2, 15)),
            "age": str(rng.randrange(15, 19)),
        },
    )
    subject = rng.choice(spec["subjects"]).format_map(slots)
    common = rng.sample(COMMON, k=3)
    log: list[str] = []
    length = 1200  # greeting, intro, request, closing and signature
    while length < BODY_TARGET_CHARS:
        line = "- " + rng.choice(spec["events"]).format_map(slots) + "."
        log.append(line)
        length += len(line) + 1
    body = "\n\n".join(
        [
            rng.choice(GREETINGS),
            rng.choice(spec["intros"]).format_map(slots) + " " + common[0].format_map(slots),
            rng.choice(LOG_INTROS).format_map(slots) + "\n" + "\n".join(log),
            rng.choice(spec["asks"]).format_map(slots)
            + " "
            + " ".join(s.format_map(slots) for s in common[1:]),
            rng.choice(CLOSINGS),
            f"{first} {last}\n{rng.randrange(1, 120)} {rng.choice(STREETS)}\n"
            f"{rng.choice(['01', '03', '07', '15', '26', '38', '42', '43', '63', '69', '73', '74'])}{rng.randrange(0, 999):03d} {city}\n"
            f"06 {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)}",
        ]
    )

    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = formataddr((f"{first} {last}", sender))
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(idstring=f"bench{index}", domain=sender.rpartition("@")[2])
    msg.set_content(body + "\n")
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
    jobs: Jobs,
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


class Jobs(Protocol):
    """What the clients take messages from: a queue, or a feed that builds them on demand."""

    def get_nowait(self) -> Outgoing: ...  # raises queue.Empty when there is none left


class JobFeed(Jobs, Protocol):
    def __len__(self) -> int: ...


def phase_intake(
    messages: list[Outgoing] | JobFeed,
    *,
    host: str,
    port: int,
    recipient: str,
    concurrency: int,
    stop: threading.Event,
    desc: str = "intake (SMTP)",
) -> IntakeResult:
    """C clients send `messages` (a list, or a feed for runs too long to hold in memory)."""
    jobs: Jobs
    if isinstance(messages, list):
        jobs = queue.SimpleQueue()
        for message in messages:
            jobs.put(message)
    else:
        jobs = messages
    result = IntakeResult()
    finished: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)
    with tqdm(
        total=len(messages), desc=desc, unit="msg", file=sys.stderr, dynamic_ncols=True
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


def code_version() -> str:
    """The commit measured (the tree changes quickly), with "+dirty" for local changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def run(args: argparse.Namespace, scratch: Scratch, stop: threading.Event) -> int:
    from django.conf import settings
    from django.core.management import call_command

    say = print
    commit = code_version()
    say(
        f"Guichet intake benchmark: {args.messages} messages, {args.concurrency} SMTP clients, {scratch.database}"
    )
    say(f"  code: {commit}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
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
    if hasattr(Request, "campaign"):
        # Near-identical requests are grouped; the generated mail is meant to be individual.
        say(
            f"  requests grouped in a campaign: {Request.objects.filter(campaign__isnull=False).count()}"
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
                    "commit": commit,
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
