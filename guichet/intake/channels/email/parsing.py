"""Robust parsing of inbound e-mail (pure Python: no Django import here).

``parse_email`` turns raw RFC 5322 bytes into a ``ParsedEmail`` and never raises:
whatever goes wrong is written, in French, into ``ParsedEmail.defects`` and the
best-effort result is returned.  ``html_to_text`` and ``strip_quoted_reply`` are
the text helpers used for display and routing.

Header values are always decoded by this module from the raw header lines
(``raw_items()``), never through the ``email.headerregistry`` objects: the raw
value is cut to a bounded length first, so a 1 MB header line costs nothing and
a malformed header can never raise.  MIME parameters (Content-Type,
Content-Disposition) are read through a small ``compat32`` header view, whose
parsing is lenient and linear.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email.policy
import email.utils
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from html import unescape as _unescape
from html.parser import HTMLParser

__all__ = [
    "FORWARD_MARKER",
    "MAX_TEXT_CHARS",
    "ParsedAttachment",
    "ParsedEmail",
    "html_to_text",
    "parse_email",
    "strip_quoted_reply",
]

#: Longest body text kept (characters); longer bodies are cut with a defect note.
MAX_TEXT_CHARS = 2 * 1024 * 1024
#: Line written before the text of a forwarded message/rfc822 part.
FORWARD_MARKER = "---- Message transféré ----"

_MAX_BODY_BYTES = 4 * MAX_TEXT_CHARS  # raw bytes decoded at most for one text part
_MAX_HEADER_VALUE = 2000  # decoded header value kept in ParsedEmail.headers
_MAX_RAW_HEADER = 16_000  # raw header characters decoded at most
_MAX_STRUCT_HEADER = 8_000  # raw Content-Type / Content-Disposition characters read
_MAX_SUBJECT = 500
_MAX_FILENAME = 200
_MAX_DEPTH = 20
_MAX_PARTS = 10_000
_MAX_HEADERS = 1_000
_MAX_DEFECTS = 100
_MAX_MESSAGE_IDS = 100
_MAX_ADDRESSES = 200


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes
    inline: bool
    content_id: str | None


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    from_name: str
    from_address: str | None
    reply_to_address: str | None
    to_addresses: tuple[str, ...]
    date: datetime | None
    text: str
    html: str | None
    attachments: tuple[ParsedAttachment, ...]
    headers: tuple[tuple[str, str], ...]
    defects: tuple[str, ...]


# --------------------------------------------------------------------------------------
# Defect notes
# --------------------------------------------------------------------------------------

_DEFECT_LABELS: dict[str, str] = {
    "NoBoundaryInMultipartDefect": "partie multipart sans paramètre boundary",
    "StartBoundaryNotFoundDefect": "délimiteur MIME (boundary) introuvable dans le corps",
    "CloseBoundaryNotFoundDefect": "délimiteur MIME de fin absent (message tronqué ?)",
    "FirstHeaderLineIsContinuationDefect": "première ligne d'en-tête est une continuation",
    "MisplacedEnvelopeHeaderDefect": "ligne « From  » d'enveloppe mal placée",
    "MissingHeaderBodySeparatorDefect": (
        "ligne d'en-tête invalide (séparateur en-tête/corps absent)"
    ),
    "MultipartConversionError": "conversion multipart impossible",
    "MultipartInvariantViolationDefect": "structure multipart incohérente",
    "InvalidMultipartContentTransferEncodingDefect": (
        "Content-Transfer-Encoding invalide pour une partie multipart"
    ),
    "UndecodableBytesDefect": "octets non décodables",
    "InvalidBase64PaddingDefect": "base64 : remplissage (padding) incorrect",
    "InvalidBase64CharactersDefect": "base64 : caractères invalides ignorés",
    "InvalidBase64LengthDefect": "base64 : longueur invalide (contenu tronqué ?)",
    "InvalidDateDefect": "date invalide",
}


class _Notes:
    """Ordered, de-duplicated, bounded list of human-readable defect notes."""

    def __init__(self, initial: Iterable[str] = ()) -> None:
        self._items: list[str] = []
        self._seen: set[str] = set()
        for item in initial:
            self.add(item)

    def add(self, note: str) -> None:
        if note in self._seen or len(self._items) >= _MAX_DEFECTS:
            return
        self._seen.add(note)
        self._items.append(note)

    def add_defects(self, part: Message) -> None:
        try:
            found = list(part.defects)
        except Exception:
            return
        for defect in found[:_MAX_DEFECTS]:
            name = type(defect).__name__
            label = _DEFECT_LABELS.get(name)
            if label is None:
                label = f"défaut MIME : {name}"
            self.add(label)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self._items)


# --------------------------------------------------------------------------------------
# Charsets
# --------------------------------------------------------------------------------------

_CHARSET_ALIASES = {
    "iso-8859-8-i": "iso-8859-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "ks_c_5601-1987": "cp949",
    "windows-874": "cp874",
    "x-sjis": "shift_jis",
}
# Labels that really mean "Windows-1252" in mail (as in the WHATWG encoding standard).
_LATIN1_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "cp819"})
# Labels that say nothing reliable: try UTF-8 first, then Windows-1252.
_UNLABELLED = frozenset(
    {"", "us-ascii", "ascii", "ansi_x3.4-1968", "unknown-8bit", "x-unknown", "unknown", "8bit"}
)
_UTF8_LABELS = frozenset({"utf-8", "utf8", "utf_8", "x-utf-8"})
_SURROGATES_RE = re.compile("[\udc80-\udcff]")


def _cp1252(data: bytes) -> str:
    """Windows-1252, with the five bytes it leaves undefined read as Latin-1."""
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return "".join(
            chr(b) if b in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else bytes([b]).decode("cp1252")
            for b in data
        )


def _looks_like_broken_utf8(data: bytes) -> bool:
    """True when ``data`` is mostly UTF-8 with a few bad bytes (not Latin-1 text)."""
    decoded = data.decode("utf-8", "replace")
    errors = decoded.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    good = sum(1 for ch in decoded if ord(ch) > 0x7F and ch != "\ufffd")
    return good > errors


def _decode_unlabelled(data: bytes) -> tuple[str, bool]:
    """UTF-8 when valid, else Windows-1252.  Second item: Windows-1252 was used."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return _cp1252(data), True


def _normalise_charset(charset: str | None) -> str:
    name = (charset or "").strip().strip("\"'").strip().lower()
    name = name.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*fr
    return _CHARSET_ALIASES.get(name, name)


def _decode_bytes(data: bytes, charset: str | None, notes: _Notes, where: str) -> str:
    """Decode ``data`` declared as ``charset``; never raises, notes what was guessed."""
    name = _normalise_charset(charset)
    if not data:
        return ""
    if name in _UNLABELLED:
        text, used_cp1252 = _decode_unlabelled(data)
        if used_cp1252 and name not in ("", "unknown-8bit", "x-unknown", "unknown", "8bit"):
            notes.add(f"{where} : jeu de caractères « {name} » incorrect, lu en windows-1252")
        return text
    if name in _LATIN1_LABELS:
        return _cp1252(data)
    if name in _UTF8_LABELS:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            if _looks_like_broken_utf8(data):
                notes.add(f"{where} : UTF-8 invalide, caractères remplacés")
                return data.decode("utf-8", "replace")
            notes.add(f"{where} : déclaré UTF-8 mais encodé en windows-1252/latin-1")
            return _cp1252(data)
    try:
        codecs.lookup(name)
        return data.decode(name, "replace")
    except Exception:
        notes.add(f"{where} : jeu de caractères inconnu « {name[:40]} », lu en UTF-8")
        return data.decode("utf-8", "replace")


def _fix_surrogates(value: str, notes: _Notes, where: str) -> str:
    """Turn raw 8-bit header bytes (kept as surrogate escapes) into real characters."""
    if not _SURROGATES_RE.search(value):
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return _SURROGATES_RE.sub("\ufffd", value)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        notes.add(f"{where} : octets non ASCII invalides, lus en windows-1252")
        return _cp1252(data)


# --------------------------------------------------------------------------------------
# Header decoding
# --------------------------------------------------------------------------------------

_ENCODED_WORD_RE = re.compile(r"=\?([^?\s]{1,75})\?([qQbB])\?([^?\s]*)\?=")
_QP_ESCAPE_RE = re.compile(rb"=([0-9A-Fa-f]{2})")
_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/]")
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")
_SPACES_RE = re.compile(r"\s+")


def _b64decode(data: bytes) -> tuple[bytes, bool]:
    """Lenient base64: junk dropped, padding repaired.  Second item: input was damaged."""
    clean = _B64_JUNK_RE.sub(b"", data.split(b"=", 1)[0] if b"=" in data else data)
    damaged = len(clean) % 4 == 1
    if damaged:
        clean = clean[:-1]
    clean += b"=" * (-len(clean) % 4)
    try:
        return binascii.a2b_base64(clean), damaged
    except (binascii.Error, ValueError):
        return b"", True


def _decode_encoded_word(kind: str, text: str, notes: _Notes) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if kind in "bB":
        value, damaged = _b64decode(raw)
        if damaged:
            notes.add("en-tête : mot encodé RFC 2047 (base64) invalide")
        return value
    return _QP_ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"_", b" "))


def _decode_rfc2047(value: str, notes: _Notes) -> str:
    """Decode RFC 2047 encoded words, joining adjacent words before charset decoding."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []

    def flush() -> None:
        for charset, data in pending:
            out.append(_decode_bytes(data, charset, notes, "en-tête"))
        pending.clear()

    last = 0
    for match in _ENCODED_WORD_RE.finditer(value):
        between = value[last : match.start()]
        if not (pending and not between.strip()):
            flush()
            out.append(between)
        charset = _normalise_charset(match.group(1))
        data = _decode_encoded_word(match.group(2), match.group(3), notes)
        if pending and pending[-1][0] == charset:
            pending[-1] = (charset, pending[-1][1] + data)
        else:
            pending.append((charset, data))
        last = match.end()
    flush()
    out.append(value[last:])
    return "".join(out)


def _unfold(value: str) -> str:
    return _FOLD_RE.sub("", value[:_MAX_RAW_HEADER])


def _clean_text_value(value: str) -> str:
    """Control characters out, whitespace collapsed, stripped."""
    return _SPACES_RE.sub(" ", _CONTROL_RE.sub(" ", value)).strip()


def _decode_header_value(raw: str, notes: _Notes) -> str:
    value = _fix_surrogates(_unfold(raw), notes, "en-tête")
    return _clean_text_value(_decode_rfc2047(value, notes))


def _raw_items(part: Message, notes: _Notes) -> list[tuple[str, str]]:
    try:
        items = [(str(k), str(v)) for k, v in part.raw_items()]
    except Exception:
        notes.add("en-têtes illisibles")
        return []
    return items


def _first_raw(items: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in items:
        if key.strip().lower() == name:
            return value
    return None


# --------------------------------------------------------------------------------------
# Addresses, identifiers, dates
# --------------------------------------------------------------------------------------

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+"
_LABEL = (
    r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*[A-Za-z0-9\u0080-\U0010ffff])?"
)
_ADDR_SPEC_RE = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")
_MSGID_BRACKET_RE = re.compile(r"<([^<>\s]{1,998})>")
_MSGID_TOKEN_RE = re.compile(r"[!-~]{1,998}")


def _valid_address(addr: str) -> str | None:
    addr = addr.strip().lower()
    if not addr or len(addr) > 254 or not _ADDR_SPEC_RE.fullmatch(addr):
        return None
    local = addr.rsplit("@", 1)[0]
    if len(local) > 64:
        return None
    return addr


def _parse_addresses(raw: str | None, notes: _Notes) -> list[tuple[str, str | None]]:
    """(decoded display name, valid lowercased address or None) for each mailbox."""
    if raw is None:
        return []
    value = _fix_surrogates(_CONTROL_RE.sub(" ", _unfold(raw)), notes, "en-tête")
    try:
        pairs = email.utils.getaddresses([value])
    except Exception:
        notes.add("en-tête d'adresse illisible")
        return []
    result: list[tuple[str, str | None]] = []
    for name, addr in pairs[:_MAX_ADDRESSES]:
        display = _clean_text_value(_decode_rfc2047(name, notes)).strip("\"' ")
        result.append((display, _valid_address(addr)))
    return result


def _message_id(raw: str | None) -> str | None:
    if raw is None:
        return None
    value = _unfold(raw).strip()
    match = _MSGID_BRACKET_RE.search(value)
    if match:
        candidate = match.group(1)
        return candidate if _MSGID_TOKEN_RE.fullmatch(candidate) else None
    if "@" in value and _MSGID_TOKEN_RE.fullmatch(value):
        return value
    return None


def _message_ids(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    value = _unfold(raw)
    found = [m for m in _MSGID_BRACKET_RE.findall(value) if _MSGID_TOKEN_RE.fullmatch(m)]
    if not found:
        found = [t for t in value.split() if "@" in t and _MSGID_TOKEN_RE.fullmatch(t)]
    unique = list(dict.fromkeys(found))
    return tuple(unique[-_MAX_MESSAGE_IDS:])


def _parse_date(raw: str | None, notes: _Notes) -> datetime | None:
    if raw is None:
        return None
    value = _clean_text_value(_unfold(raw)[:200])
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except Exception:
        notes.add("date illisible")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


# --------------------------------------------------------------------------------------
# MIME structure
# --------------------------------------------------------------------------------------

_STRUCT_HEADERS = ("content-type", "content-disposition", "content-id")


@dataclass(frozen=True)
class _PartInfo:
    content_type: str
    disposition: str | None
    filename: str | None
    content_id: str | None
    charset: str | None

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @property
    def subtype(self) -> str:
        return self.content_type.partition("/")[2]


def _part_info(part: Message, notes: _Notes) -> _PartInfo:
    """Read the MIME headers of ``part`` through a lenient compat32 header view."""
    view = Message(policy=email.policy.compat32)
    raw_cid: str | None = None
    for name, value in _raw_items(part, notes):
        key = name.strip().lower()
        if key not in _STRUCT_HEADERS or key in {k.lower() for k in view.keys()}:
            continue
        clean = _fix_surrogates(_unfold(value[:_MAX_STRUCT_HEADER]), notes, "en-tête MIME")
        clean = _CONTROL_RE.sub(" ", clean)
        if key == "content-id":
            raw_cid = clean
        view[key] = clean

    def guarded(default: str | None, read: Callable[[], object]) -> str | None:
        try:
            result = read()
        except Exception:
            notes.add("en-tête MIME illisible")
            return default
        return result if isinstance(result, str) else default

    content_type = guarded("text/plain", view.get_content_type) or "text/plain"
    if "/" not in content_type:
        content_type = "application/octet-stream"
    disposition = guarded(None, view.get_content_disposition)
    filename = guarded(None, view.get_filename)
    if filename is not None:
        filename = _decode_rfc2047(_fix_surrogates(filename, notes, "nom de fichier"), notes)
    charset = guarded(None, view.get_content_charset)
    content_id = None
    if raw_cid is not None:
        content_id = _clean_text_value(raw_cid).strip("<> ") or None
    return _PartInfo(
        content_type=content_type.lower(),
        disposition=disposition.lower() if disposition else None,
        filename=filename,
        content_id=content_id[:_MAX_HEADER_VALUE] if content_id else None,
        charset=charset,
    )


def _payload_bytes(part: Message, notes: _Notes) -> bytes:
    """Transfer-decoded payload of a leaf part (quoted-printable, base64, 8bit...)."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        notes.add("contenu de partie MIME non décodable")
        try:
            raw = part.get_payload()
        except Exception:
            return b""
        return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


def _children(part: Message, notes: _Notes) -> list[Message]:
    try:
        payload = part.get_payload()
    except Exception:
        notes.add("sous-parties MIME illisibles")
        return []
    if not isinstance(payload, list):
        return []
    return [child for child in payload if isinstance(child, Message)]


def _clean_body_text(text: str, notes: _Notes) -> str:
    if "\x00" in text:
        notes.add("octets NUL supprimés du texte")
        text = text.replace("\x00", "")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > MAX_TEXT_CHARS:
        notes.add("corps du message tronqué à 2 Mo")
        text = text[:MAX_TEXT_CHARS]
    return text


def _decode_body(part: Message, info: _PartInfo, notes: _Notes) -> str:
    data = _payload_bytes(part, notes)
    if len(data) > _MAX_BODY_BYTES:
        notes.add("corps du message tronqué à 2 Mo")
        data = data[:_MAX_BODY_BYTES]
        for back in range(1, 4):  # do not cut a UTF-8 sequence in two
            if data[-back] >= 0xC0:
                data = data[:-back]
                break
            if data[-back] < 0x80:
                break
    return _clean_body_text(_decode_bytes(data, info.charset, notes, "corps"), notes)


@dataclass
class _Body:
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    has_plain: bool = False


@dataclass
class _Context:
    notes: _Notes
    max_attachments: int
    attachments: list[ParsedAttachment] = field(default_factory=list)
    dropped: int = 0
    parts_seen: int = 0


def _has_text(body: _Body) -> bool:
    return any(t.strip() for t in body.texts)


def _walk(part: Message, ctx: _Context, depth: int, parent: str) -> _Body:
    if depth > _MAX_DEPTH:
        ctx.notes.add(f"imbrication MIME trop profonde (plus de {_MAX_DEPTH} niveaux) : ignorée")
        return _Body()
    ctx.parts_seen += 1
    if ctx.parts_seen > _MAX_PARTS:
        ctx.notes.add(f"plus de {_MAX_PARTS} parties MIME : les suivantes sont ignorées")
        return _Body()
    ctx.notes.add_defects(part)
    info = _part_info(part, ctx.notes)
    if part.is_multipart():
        children = _children(part, ctx.notes)
        if info.maintype == "message":
            if info.subtype in ("rfc822", "global"):
                return _walk_forwarded(children, ctx, depth)
            return _walk_header_blocks(children, ctx)
        if info.subtype == "alternative":
            return _walk_alternative(children, ctx, depth)
        return _walk_mixed(children, ctx, depth, info.subtype)
    if info.maintype == "multipart":
        return _salvage_multipart(part, info, ctx, depth)
    is_body = (
        info.maintype == "text"
        and info.subtype in ("plain", "html")
        and info.disposition != "attachment"
        and not info.filename
    )
    if is_body:
        text = _decode_body(part, info, ctx.notes)
        if info.subtype == "html":
            return _Body(texts=[html_to_text(text)], htmls=[text])
        return _Body(texts=[text], has_plain=True)
    _add_attachment(part, info, ctx, parent)
    return _Body()


def _walk_child(child: Message, ctx: _Context, depth: int, parent: str) -> _Body:
    try:
        return _walk(child, ctx, depth + 1, parent)
    except Exception as exc:  # one unreadable part must not lose the others
        ctx.notes.add(f"partie MIME illisible ignorée ({type(exc).__name__})")
        return _Body()


def _walk_mixed(children: list[Message], ctx: _Context, depth: int, subtype: str) -> _Body:
    body = _Body()
    for child in children:
        sub = _walk_child(child, ctx, depth, subtype)
        body.texts.extend(sub.texts)
        body.htmls.extend(sub.htmls)
        body.has_plain = body.has_plain or sub.has_plain
    return body


def _walk_alternative(children: list[Message], ctx: _Context, depth: int) -> _Body:
    bodies = [_walk_child(child, ctx, depth, "alternative") for child in children]
    plain = next((b for b in bodies if b.has_plain and _has_text(b)), None)
    rich = next((b for b in reversed(bodies) if b.htmls), None)
    chosen = plain or rich or next((b for b in bodies if _has_text(b)), None)
    return _Body(
        texts=list(chosen.texts) if chosen else [],
        htmls=list(rich.htmls) if rich else [],
        has_plain=plain is not None,
    )


def _walk_forwarded(children: list[Message], ctx: _Context, depth: int) -> _Body:
    if not children:
        return _Body()
    inner = children[0]
    items = _raw_items(inner, ctx.notes)
    lines = [FORWARD_MARKER]
    raw_from = _first_raw(items, "from")
    if raw_from is not None:
        mailboxes = _parse_addresses(raw_from, ctx.notes)
        if mailboxes and mailboxes[0][1]:
            name, addr = mailboxes[0]
            lines.append(f"De : {name} <{addr}>" if name else f"De : {addr}")
        else:
            lines.append(f"De : {_decode_header_value(raw_from, ctx.notes)[:500]}")
    for header, label in (("date", "Date"), ("subject", "Objet")):
        raw = _first_raw(items, header)
        if raw is not None:
            lines.append(f"{label} : {_decode_header_value(raw, ctx.notes)[:_MAX_SUBJECT]}")
    sub = _walk_child(inner, ctx, depth, "rfc822")
    text = "\n".join(lines) + "\n\n" + _join_texts(sub.texts)
    return _Body(texts=[text.rstrip()], has_plain=True)


def _walk_header_blocks(children: list[Message], ctx: _Context) -> _Body:
    """message/delivery-status and the like: header blocks shown as "Name: value" lines."""
    lines = [
        f"{_clean_text_value(name)}: {_decode_header_value(value, ctx.notes)[:_MAX_HEADER_VALUE]}"
        for child in children[:50]
        for name, value in _raw_items(child, ctx.notes)[:100]
    ]
    return _Body(texts=["\n".join(lines)] if lines else [])


_BOUNDARY_LINE_RE = re.compile(rb"^--([^\s\"]{1,70}?)[ \t]*\r?$", re.M)


def _salvage_multipart(part: Message, info: _PartInfo, ctx: _Context, depth: int) -> _Body:
    """A multipart whose boundary is missing or wrong: guess it, or read as text."""
    data = _payload_bytes(part, ctx.notes)
    match = _BOUNDARY_LINE_RE.search(data)
    if match:
        boundary = match.group(1)
        if boundary.endswith(b"--"):
            boundary = boundary[:-2]
        if boundary and data.count(b"--" + boundary) >= 2:
            ctx.notes.add("délimiteur MIME absent ou faux : délimiteur deviné")
            head = f'Content-Type: {info.content_type}; boundary="'.encode("ascii", "replace")
            rebuilt = head + boundary + b'"\r\n\r\n' + data
            guessed = email.message_from_bytes(rebuilt, policy=email.policy.default)
            if guessed.is_multipart():
                return _walk_child(guessed, ctx, depth, "mixed")
    ctx.notes.add("partie multipart illisible : contenu lu comme texte brut")
    text = _clean_body_text(_decode_bytes(data, info.charset, ctx.notes, "corps"), ctx.notes)
    return _Body(texts=[text], has_plain=True)


# --------------------------------------------------------------------------------------
# Attachments
# --------------------------------------------------------------------------------------

_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _sanitise_filename(name: str | None, index: int) -> str:
    fallback = f"piece-jointe-{index}"
    if not name:
        return fallback
    chars = []
    for ch in unicodedata.normalize("NFC", name):
        if ch in "/\\":
            chars.append("_")
        elif unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS:
            continue
        else:
            chars.append(ch)
    cleaned = _SPACES_RE.sub(" ", "".join(chars)).strip(" .")
    if not cleaned or set(cleaned) <= {"_", "."}:
        return fallback
    if len(cleaned) > _MAX_FILENAME:
        stem, dot, ext = cleaned.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            cleaned = stem[: _MAX_FILENAME - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            cleaned = cleaned[:_MAX_FILENAME].rstrip(" .")
    return cleaned or fallback


def _add_attachment(part: Message, info: _PartInfo, ctx: _Context, parent: str) -> None:
    if len(ctx.attachments) >= ctx.max_attachments:
        ctx.dropped += 1
        return
    inline = info.content_id is not None and (
        info.disposition == "inline" or (info.disposition is None and parent == "related")
    )
    ctx.attachments.append(
        ParsedAttachment(
            filename=_sanitise_filename(info.filename, len(ctx.attachments) + 1),
            content_type=info.content_type,
            content=_payload_bytes(part, ctx.notes),
            inline=inline,
            content_id=info.content_id,
        )
    )


# --------------------------------------------------------------------------------------
# parse_email
# --------------------------------------------------------------------------------------


def _join_texts(texts: Iterable[str]) -> str:
    return "\n\n".join(t.strip("\n").rstrip() for t in texts if t.strip())


def _empty(notes: _Notes, text: str = "") -> ParsedEmail:
    return ParsedEmail(
        message_id=None,
        in_reply_to=(),
        references=(),
        subject="",
        from_name="",
        from_address=None,
        reply_to_address=None,
        to_addresses=(),
        date=None,
        text=text,
        html=None,
        attachments=(),
        headers=(),
        defects=notes.as_tuple(),
    )


def _build(msg: Message, max_attachments: int, notes: _Notes) -> ParsedEmail:
    items = _raw_items(msg, notes)
    if len(items) > _MAX_HEADERS:
        notes.add(f"plus de {_MAX_HEADERS} en-têtes : les suivants sont ignorés")
        items = items[:_MAX_HEADERS]
    headers: list[tuple[str, str]] = []
    for name, value in items:
        clean_name = _clean_text_value(_fix_surrogates(name, notes, "nom d'en-tête"))[:200]
        if len(value) > _MAX_HEADER_VALUE:
            notes.add(f"en-tête {clean_name[:60]} trop long : tronqué")
        headers.append((clean_name, _decode_header_value(value, notes)[:_MAX_HEADER_VALUE]))

    from_boxes = _parse_addresses(_first_raw(items, "from"), notes)
    from_name = from_boxes[0][0][:_MAX_SUBJECT] if from_boxes else ""
    from_address = next((addr for _, addr in from_boxes if addr), None)
    if from_boxes and from_address is None:
        notes.add("adresse d'expéditeur (From) invalide")
    reply_to = next(
        (a for _, a in _parse_addresses(_first_raw(items, "reply-to"), notes) if a), None
    )
    to_addresses = tuple(
        dict.fromkeys(
            a
            for raw in (v for k, v in items if k.strip().lower() == "to")
            for _, a in _parse_addresses(raw, notes)
            if a
        )
    )
    raw_subject = _first_raw(items, "subject")
    subject = _decode_header_value(raw_subject, notes)[:_MAX_SUBJECT] if raw_subject else ""

    ctx = _Context(notes=notes, max_attachments=max(0, max_attachments))
    body = _walk_child(msg, ctx, -1, "")
    if ctx.dropped:
        limit = ctx.max_attachments
        notes.add(f"{ctx.dropped} pièce(s) jointe(s) ignorée(s) : limite de {limit} atteinte")
    text = _join_texts(body.texts)
    if len(text) > MAX_TEXT_CHARS:
        notes.add("corps du message tronqué à 2 Mo")
        text = text[:MAX_TEXT_CHARS]
    html = "\n".join(body.htmls)
    if len(html) > MAX_TEXT_CHARS:
        notes.add("corps HTML tronqué à 2 Mo")
        html = html[:MAX_TEXT_CHARS]

    return ParsedEmail(
        message_id=_message_id(_first_raw(items, "message-id")),
        in_reply_to=_message_ids(_first_raw(items, "in-reply-to")),
        references=_message_ids(_first_raw(items, "references")),
        subject=subject,
        from_name=from_name,
        from_address=from_address,
        reply_to_address=reply_to,
        to_addresses=to_addresses[:_MAX_ADDRESSES],
        date=_parse_date(_first_raw(items, "date"), notes),
        text=text,
        html=html if html.strip() else None,
        attachments=tuple(ctx.attachments),
        headers=tuple(headers),
        defects=notes.as_tuple(),
    )


def _load_default(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.default)


def _load_compat32(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _load_headers_only(raw: bytes) -> Message:
    return BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)


def parse_email(raw: bytes, *, max_attachments: int = 100) -> ParsedEmail:
    """Parse raw mail bytes.  Never raises: problems are listed in ``defects``."""
    failures: list[str] = []
    try:
        data = bytes(raw)
    except Exception:
        return _empty(_Notes(["entrée illisible : pas des octets"]))
    if not data.strip():
        return _empty(_Notes(["message vide"]))
    loaders = (
        ("standard", _load_default),
        ("compat32", _load_compat32),
        ("en-têtes seuls", _load_headers_only),
    )
    for label, load in loaders:
        notes = _Notes(failures)
        try:
            return _build(load(data), max_attachments, notes)
        except Exception as exc:
            failures.append(f"échec de l'analyse ({label}) : {type(exc).__name__}")
    notes = _Notes(failures)
    text = _clean_body_text(_decode_unlabelled(data[:_MAX_BODY_BYTES])[0], notes)
    return _empty(notes, text)


# --------------------------------------------------------------------------------------
# html_to_text
# --------------------------------------------------------------------------------------

_RAWTEXT_OPEN_RE = re.compile(r"<(script|style)\b", re.I)
_SKIP_TAGS = frozenset({"head", "title", "template", "script", "style"})
_HEAD_TAGS = frozenset({"title", "meta", "link", "base", "style", "script", "noscript", "head"})
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre", "hr", "dl", "blockquote"}
)
_BLOCK_TAGS = frozenset(
    {
        "div", "tr", "ul", "ol", "li", "dd", "dt", "section", "article", "header",
        "footer", "nav", "aside", "main", "address", "form", "fieldset", "legend",
        "figure", "figcaption", "caption", "center", "details", "summary", "body",
        "html", "tbody", "thead", "tfoot", "option",
    }
)  # fmt: skip


def _prepare_html(html: str) -> str:
    """Linear pre-pass: drop comments, declarations, scripts and styles; escape stray '<'.

    ``html.parser`` can take quadratic time on unterminated constructs (``<a<a<a``,
    ``<!--`` without end...); after this pass, every ``<`` it sees can be terminated.
    """
    out: list[str] = []
    last_gt = html.rfind(">")
    i, n = 0, len(html)
    while i < n:
        j = html.find("<", i)
        if j < 0:
            out.append(html[i:])
            break
        out.append(html[i:j])
        nxt = html[j + 1 : j + 2]
        if html.startswith("<!--", j):
            end = html.find("-->", j + 4)
            if end < 0:
                break  # an unterminated comment hides the rest, as in a browser
            i = end + 3
            continue
        if nxt in ("!", "?"):
            if j > last_gt:
                break
            i = html.find(">", j) + 1
            continue
        after = html[j + 2 : j + 3] if nxt == "/" else nxt
        if after.isascii() and after.isalpha():
            if j > last_gt:
                out.append(html[j:].replace("<", "&lt;"))
                break
            raw_text = _RAWTEXT_OPEN_RE.match(html, j)
            if raw_text:
                closing = re.compile(rf"</{raw_text.group(1)}\s*>", re.I).search(html, j)
                if closing is None:
                    break
                i = closing.end()
                continue
            out.append("<")
            i = j + 1
            continue
        out.append("&lt;")
        i = j + 1
    return "".join(out)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._current: list[str] = []
        self._line_quote = 0
        self._skip = 0
        self._in_head = False
        self._pre = 0
        self._quote = 0
        self._lists = 0

    # -- output helpers --
    def _flush(self, *, force: bool = False) -> None:
        line = "".join(self._current)
        line = line.rstrip() if self._pre else line.strip()
        if line or force:
            prefix = "> " * self._line_quote if line else ""
            self.lines.append(prefix + line)
        self._current = []

    def _break(self, *, blank: bool) -> None:
        self._flush()
        if blank and self.lines and self.lines[-1] != "":
            self.lines.append("")

    def _write(self, text: str) -> None:
        if not self._current:
            self._line_quote = self._quote
        self._current.append(text)

    # -- parser callbacks --
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" or (self._in_head and tag not in _HEAD_TAGS):
            self._in_head = False
        if tag == "head":
            self._in_head = True
            return
        if tag in _SKIP_TAGS:
            self._skip += 1
            return
        if tag == "br":
            self._flush(force=True)
        elif tag == "li":
            self._break(blank=False)
            self._write("  " * max(0, self._lists - 1) + "- ")
        elif tag in ("td", "th"):
            if self._current and not "".join(self._current).endswith(" "):
                self._write(" ")
        elif tag in _PARAGRAPH_TAGS:
            self._break(blank=True)
        elif tag in _BLOCK_TAGS:
            self._break(blank=False)
        if tag == "pre":
            self._pre += 1
        elif tag == "blockquote":
            self._quote += 1
        elif tag in ("ul", "ol"):
            self._lists += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._flush(force=True)
        elif tag in _PARAGRAPH_TAGS or tag in _BLOCK_TAGS:
            self._break(blank=tag in _PARAGRAPH_TAGS)

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self._in_head = False
            return
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
            return
        if tag in _PARAGRAPH_TAGS:
            self._break(blank=True)
        elif tag in _BLOCK_TAGS:
            self._break(blank=False)
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
        elif tag in ("ul", "ol"):
            self._lists = max(0, self._lists - 1)

    def handle_data(self, data: str) -> None:
        if self._skip or self._in_head:
            return
        if self._pre:
            pieces = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            for index, piece in enumerate(pieces):
                if index:
                    self._flush(force=True)
                if piece:
                    self._write(piece.replace("\xa0", " "))
            return
        text = _SPACES_RE.sub(" ", data)
        if not self._current or "".join(self._current[-1:]).endswith(" "):
            text = text.lstrip()
        if text:
            self._write(text)

    def result(self) -> str:
        self._flush()
        return _tidy_lines(self.lines)


_BLANK_RUN_RE = re.compile(r"\n{3,}")


def _tidy_lines(lines: Iterable[str]) -> str:
    text = "\n".join(line.rstrip() for line in lines)
    return _BLANK_RUN_RE.sub("\n\n", text).strip("\n")


_TAG_RE = re.compile(r"<[^>]*>")


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML document (stdlib ``html.parser`` only).

    Scripts, styles and the head are dropped, block elements start new lines,
    ``<br>`` breaks lines, list items become ``- `` lines, blockquotes are prefixed
    with ``> ``, entities are decoded and runs of blank lines are collapsed.
    """
    try:
        prepared = _prepare_html(html.replace("\x00", ""))
        parser = _TextExtractor()
        parser.feed(prepared)
        parser.close()
        return parser.result()
    except Exception:
        stripped = _unescape(_TAG_RE.sub(" ", html.replace("\x00", "")))
        return _tidy_lines(_SPACES_RE.sub(" ", line) for line in stripped.splitlines())


# --------------------------------------------------------------------------------------
# strip_quoted_reply
# --------------------------------------------------------------------------------------

_ATTRIBUTION_RES = (
    re.compile(r"^\s*Le\b.*\d.*\ba\s+[ée]crit\s*:?\s*$", re.I | re.S),
    re.compile(r"^\s*On\b.*\d.*\bwrote\s*:?\s*$", re.I | re.S),
)
_ATTRIBUTION_START_RE = re.compile(r"^\s*(Le|On)\b", re.I)
_ORIGINAL_RE = re.compile(
    r"^\s*-{2,}\s*(Original Message|Message d['’]origine|Message original"
    r"|Courriel original|Mail original)\s*-{2,}\s*$",
    re.I,
)
_FORWARD_RE = re.compile(
    r"^\s*-{2,}\s*(Message transf[ée]r[ée]|Forwarded message|Message transmis"
    r"|Courriel transf[ée]r[ée])\s*-{2,}\s*$",
    re.I,
)
_OUTLOOK_FROM_RE = re.compile(r"^\s*\**\s*(De|From)\s*\**\s*:", re.I)
_OUTLOOK_SENT_RE = re.compile(r"^\s*\**\s*(Envoy[ée]|Sent|Date)\s*\**\s*:", re.I)
_OUTLOOK_OTHER_RE = re.compile(r"^\s*\**\s*(À|A|To|Objet|Subject|Cc)\s*\**\s*:", re.I)
_SEPARATOR_RE = re.compile(r"^\s*_{8,}\s*$")
_MOBILE_RE = re.compile(
    r"^\s*(envoy[ée] (de|depuis|à partir de) (mon|ma|l['’]application|outlook|yahoo)\b.*"
    r"|sent from (my|outlook|yahoo|mail for)\b.*"
    r"|(get|obtenir|télécharger) outlook (for|pour) (ios|android)\b.*)$",
    re.I,
)


def _attribution_length(lines: Sequence[str], index: int) -> int:
    """Number of lines (1 to 3) of a "Le ... a écrit :" / "On ... wrote:" line at index."""
    if not _ATTRIBUTION_START_RE.match(lines[index]):
        return 0
    for length in (1, 2, 3):
        if index + length > len(lines):
            break
        joined = " ".join(line.strip() for line in lines[index : index + length])
        if any(regex.match(joined) for regex in _ATTRIBUTION_RES):
            return length
    return 0


def _previous_nonblank(lines: Sequence[str], index: int) -> str:
    for line in reversed(lines[:index]):
        if line.strip():
            return line
    return ""


def _is_outlook_header(lines: Sequence[str], index: int) -> bool:
    if not _OUTLOOK_FROM_RE.match(lines[index]):
        return False
    if _FORWARD_RE.match(_previous_nonblank(lines, index)):
        return False  # a forwarded message is content, not a quote
    following = lines[index + 1 : index + 6]
    return any(_OUTLOOK_SENT_RE.match(line) for line in following) and any(
        _OUTLOOK_OTHER_RE.match(line) for line in following
    )


def strip_quoted_reply(text: str) -> str:
    """The new text of a reply: quotes, attributions, signature and mobile footers removed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if line.rstrip() == "--":
            break  # signature separator: the rest is signature or quote
        if _ORIGINAL_RE.match(stripped) or _is_outlook_header(lines, index):
            break
        length = _attribution_length(lines, index)
        if length:
            following = next((ln for ln in lines[index + length :] if ln.strip()), "")
            if following.lstrip().startswith(">"):
                index += length  # quoted lines follow; keep any text written after them
                continue
            break
        if stripped.startswith(">") or _MOBILE_RE.match(stripped):
            index += 1
            continue
        kept.append(line.rstrip())
        index += 1
    while kept and (not kept[-1].strip() or _SEPARATOR_RE.match(kept[-1])):
        kept.pop()
    return _tidy_lines(kept).strip()
