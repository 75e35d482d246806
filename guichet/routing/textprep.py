"""Text preparation for routing: the words that matter, whatever state the message arrives in.

Pure functions, no Django. Two views of one message come out of :func:`prepare`:

* ``model_text`` keeps accents and casing cues for the sentence encoder (it was trained on
  real, accented text), with SMS abbreviations expanded and SHOUTING lowered;
* ``folded_text`` is lowercase and accent-free for the TF-IDF part, so "Lycée", "LYCEE" and
  "lycee" are one feature.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from guichet.intake.channels.email.parsing import strip_quoted_reply

#: Characters looked at, at most. A 1 MB message is cut first so every later step is cheap;
#: the subject and the first lines carry the request, the rest is attachments pasted inline.
MAX_INPUT_CHARS = 20_000
#: Characters kept for the models after cleaning.
MAX_MODEL_CHARS = 4_000

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ufeff\u200b-\u200f]")
_HYPHEN_BREAK_RE = re.compile(r"(\w)-\n(\w)")
_SYMBOL_RUN_RE = re.compile(r"([^\w\s])\1{2,}")
_SPACES_RE = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES_RE = re.compile(r"\n{3,}")
_URL_RE = re.compile(r"https?://\S+|www\.\S+", re.I)
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b")
_PHONE_RE = re.compile(r"(?:\+33\s?|0)[1-9](?:[\s.-]?\d{2}){4}\b")
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
# Salutations and closings are in every message of every service: they only cost the
# sentence encoder tokens (its time grows with them) and dilute what is asked.
_GREETING_RE = re.compile(
    r"^\s*((bonjour|bonsoir|salut|slt|bjr|hello|hi|hey|good (morning|afternoon|evening)|dear|madame|monsieur|"
    r"mesdames|messieurs|cher|ch[eè]re|chers)\b[^\n.!?]{0,70}?[,!.:\n]|(bonjour|bonsoir|salut|slt|bjr|hello|hi)\b[ ,!]*)",
    re.I,
)
_CLOSING_RE = re.compile(
    r"^\s*(cordialement|bien cordialement|bien [àa] vous|salutations|sinc[eè]res salutations|"
    r"veuillez agr[ée]er|je vous prie d.agr[ée]er|dans l.attente de votre r[ée]ponse|merci d.avance|"
    r"en vous remerciant|(best |kind |warm )?regards|sincerely|yours (faithfully|sincerely)|many thanks|thanks in advance)\b",
    re.I,
)

# Legal footers and environmental notices are the same in every mail of a sender's
# organisation, so they only teach the model who wrote, never what is asked.
_DISCLAIMER_RES = (
    re.compile(
        r"^\s*(ce (message|courriel|mail|e-mail)|cet e-?mail|les informations contenues)\b.*\b(confidenti|destinataire)",
        re.I,
    ),
    re.compile(
        r"^\s*(this (e-?mail|message)|the information contained)\b.*\b(confidential|intended)", re.I
    ),
    re.compile(r"^\s*(pensez|merci de penser) (à|a) l.environnement", re.I),
    re.compile(r"^\s*please consider the environment", re.I),
    re.compile(r"^\s*(avertissement|disclaimer)\s*:", re.I),
)

# SMS and chat spellings seen in web forms, mapped to the words the corpus uses.
# Only tokens that are not French words ("peu", "tel", "ou" stay as written); the one-letter
# "c" and "g" only in lower case, so "bâtiment C" or "G" stay as written.
SMS_EXPANSIONS: dict[str, str] = {
    "slt": "salut",
    "bjr": "bonjour",
    "bsr": "bonsoir",
    "svp": "s'il vous plaît",
    "stp": "s'il te plaît",
    "svpl": "s'il vous plaît",
    "pr": "pour",
    "ke": "que",
    "kel": "quel",
    "kelle": "quelle",
    "koi": "quoi",
    "ki": "qui",
    "pk": "pourquoi",
    "pq": "pourquoi",
    "pkoi": "pourquoi",
    "qd": "quand",
    "qand": "quand",
    "bcp": "beaucoup",
    "bcq": "beaucoup",
    "c": "c'est",
    "cest": "c'est",
    "ct": "c'était",
    "g": "j'ai",
    "jai": "j'ai",
    "jsuis": "je suis",
    "chui": "je suis",
    "jsp": "je ne sais pas",
    "tjrs": "toujours",
    "tjs": "toujours",
    "mtn": "maintenant",
    "dc": "donc",
    "ds": "dans",
    "avc": "avec",
    "pb": "problème",
    "pbm": "problème",
    "pbs": "problèmes",
    "rdv": "rendez-vous",
    "msg": "message",
    "ya": "il y a",
    "tt": "tout",
    "tte": "toute",
    "ttes": "toutes",
    "qqn": "quelqu'un",
    "qq1": "quelqu'un",
    "qqch": "quelque chose",
    "qqs": "quelques",
    "mrc": "merci",
    "mci": "merci",
    "dmd": "demande",
    "cdt": "cordialement",
    "cdlt": "cordialement",
    "asso": "association",
    "appart": "appartement",
    "ordi": "ordinateur",
    "prof": "professeur",
    "profs": "professeurs",
    "dossie": "dossier",
    "nn": "non",
    "ouai": "oui",
    "ouais": "oui",
    "pa": "pas",
    "pac": "parce que",
    "psk": "parce que",
    "pcq": "parce que",
    "vs": "vous",
    "ns": "nous",
    "vx": "veux",
    "veu": "veux",
    "jvoudrais": "je voudrais",
    "voudrai": "voudrais",
}
_SMS_RE = re.compile(
    r"(?<![\w'’])("
    + "|".join(sorted(map(re.escape, SMS_EXPANSIONS), key=len, reverse=True))
    + r")(?![\w'’])",
    re.I,
)


@dataclass(frozen=True)
class PreparedText:
    """One message made ready for the classifier."""

    model_text: str
    folded_text: str
    language: str
    truncated: bool

    @property
    def is_empty(self) -> bool:
        return not self.folded_text.strip()


def fold(text: str) -> str:
    """Lowercase without accents or ligatures: the TF-IDF alphabet."""
    text = text.lower().replace("œ", "oe").replace("æ", "ae").replace("’", "'").replace("ß", "ss")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _drop_disclaimers(text: str) -> str:
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if any(regex.match(line) for regex in _DISCLAIMER_RES):
            # A disclaimer closes a mail: whatever follows it is more of the same footer.
            return "\n".join(lines[:index])
    return text


def _unshout(text: str) -> str:
    """Lowercase words written in capitals when most of the text is capitals."""
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < 8:
        return text
    upper = sum(1 for ch in letters if ch.isupper())
    if upper / len(letters) < 0.6:
        return text
    # Sentence case keeps the encoder's notion of a sentence start; acronyms are rare enough.
    lowered = text.lower()
    return re.sub(r"(^|[.!?]\s+|\n)(\w)", lambda m: m.group(1) + m.group(2).upper(), lowered)


def expand_sms(text: str) -> str:
    """Expand SMS abbreviations ("slt c pr savoir" → "salut c'est pour savoir")."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        if len(token) == 1 and token.isupper():
            return token
        return SMS_EXPANSIONS[token.lower()]

    return _SMS_RE.sub(replace, text)


def _drop_courtesies(text: str) -> str:
    for _ in range(2):  # "Bonjour,\nMadame, Monsieur," has two
        match = _GREETING_RE.match(text)
        if match is None or len(text) - match.end() < 20:
            break
        text = text[match.end() :].lstrip(" ,\n")
    lines = text.split("\n")
    # A closing formula in the last lines starts the signature: drop it and what follows.
    for index in range(max(1, len(lines) - 6), len(lines)):
        if _CLOSING_RE.match(lines[index]):
            return "\n".join(lines[:index]).rstrip()
    return text


def clean_body(body: str) -> str:
    """The new text of a message: no quoted reply, signature, legal footer or OCR debris."""
    text = _CONTROL_RE.sub(" ", body.replace("\r\n", "\n").replace("\r", "\n"))
    text = _HYPHEN_BREAK_RE.sub(r"\1\2", text)
    stripped = strip_quoted_reply(text)
    # A message that is nothing but a quote (a forward without comment) keeps its quote.
    if stripped.strip():
        text = stripped
    text = _drop_courtesies(_drop_disclaimers(text))
    text = _URL_RE.sub(" ", text)
    text = _EMAIL_RE.sub(" ", text)
    text = _PHONE_RE.sub(" ", text)
    text = _SYMBOL_RUN_RE.sub(r"\1", text)
    text = _SPACES_RE.sub(" ", text)
    return _BLANK_LINES_RE.sub("\n\n", text).strip()


def prepare(subject: str, body: str) -> PreparedText:
    """Subject and body as the classifier reads them; never raises on any str input."""
    subject = subject or ""
    body = body or ""
    truncated = len(subject) + len(body) > MAX_INPUT_CHARS
    subject = _CONTROL_RE.sub(" ", subject[:500]).strip()
    body = clean_body(body[:MAX_INPUT_CHARS])
    # Reply prefixes say nothing about the topic.
    subject = re.sub(r"^\s*((re|tr|fwd?|aw|wg)\s*:\s*)+", "", subject, flags=re.I)
    joined = f"{subject}\n{body}".strip() if subject else body
    joined = expand_sms(_unshout(joined))
    if len(joined) > MAX_MODEL_CHARS:
        joined = joined[:MAX_MODEL_CHARS]
        truncated = True
    folded = fold(joined)
    return PreparedText(
        model_text=joined, folded_text=folded, language=detect_language(joined), truncated=truncated
    )


# Language detection: a handful of frequent function words per language is enough to tell
# the languages a Région receives apart, needs no model file and runs in microseconds.
_STOPWORDS: dict[str, frozenset[str]] = {
    "fr": frozenset(
        "le la les des du de un une et est pour que qui dans sur pas au aux avec ce cette mon ma mes "
        "nous vous je il elle sont mais ou donc car bonjour merci votre notre leur ne plus tres "
        "depuis ai avons etait c'est j'ai d'un d'une qu'il madame monsieur cordialement".split()
    ),
    "en": frozenset(
        "the and is are to of in for that with on this my we you it was be have has not but "
        "from at by an or our your they would could please thank thanks dear hello regards i".split()
    ),
    "es": frozenset(
        "el la los las de del y que en un una por para con es no se su al lo como mas pero "
        "hola gracias estoy tengo usted señor señora muy mi".split()
    ),
    "it": frozenset(
        "il lo la gli le di da in con su per che un una non sono mio mia buongiorno grazie "
        "della del nel alla questo questa molto anche ho".split()
    ),
    "de": frozenset(
        "der die das und ist nicht mit ich sie wir ein eine zu von den dem auf für sehr "
        "guten tag danke bitte haben ist auch mein meine".split()
    ),
    "pt": frozenset(
        "o a os as de do da em um uma que para com não por mais se na no meu minha obrigado "
        "obrigada olá bom dia senhor senhora estou".split()
    ),
    "nl": frozenset(
        "de het een en van ik je is niet dat met voor op zijn wij u dank bedankt hallo".split()
    ),
}
# Compared with folded words, so the lists are folded too ("não" → "nao").
_STOPWORDS = {code: frozenset(fold(w) for w in words) for code, words in _STOPWORDS.items()}
_SCRIPTS = (
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
)


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, or "und" when it cannot be told."""
    sample = text[:3000]
    for code, script in _SCRIPTS:
        hits = len(script.findall(sample))
        if hits >= 3 and hits >= 0.3 * sum(1 for ch in sample if ch.isalpha()):
            return code
    # One-letter words ("y", "a", "o") are in several lists and in any garbage.
    words = [fold(w) for w in _WORD_RE.findall(sample.replace("’", "'")) if len(w) > 1]
    if not words:
        return "und"
    scores = {code: sum(1 for w in words if w in stop) for code, stop in _STOPWORDS.items()}
    best = max(scores, key=lambda code: (scores[code], code == "fr"))
    if scores[best] == 0 or (len(words) >= 6 and scores[best] < 2):
        return "und"
    return best
