"""Tests of the pure-Python e-mail parser, on hand-built .eml fixtures (no Django needed)."""

from __future__ import annotations

import ast
import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guichet.intake.channels.email import parsing
from guichet.intake.channels.email.parsing import (
    FORWARD_MARKER,
    MAX_TEXT_CHARS,
    ParsedAttachment,
    ParsedEmail,
    html_to_text,
    parse_email,
    strip_quoted_reply,
)

FIXTURES = Path(__file__).parent / "fixtures" / "eml"

# The exact bytes base64-encoded into mixed_pdf.eml (every byte value, CR and LF included).
PDF_BYTES = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 4 + b"\r\n\n\r%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) + b"IEND\xaeB`\x82"


def eml(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str) -> ParsedEmail:
    return parse_email(eml(name))


# -- charsets ---------------------------------------------------------------------------


def test_plain_utf8_headers_and_body() -> None:
    mail = parse("plain_utf8.eml")
    assert mail.message_id == "20250303101500.4242@mail.exemple.fr"
    assert mail.in_reply_to == ("dossier-2025-0042@guichet.region.fr",)
    assert mail.references == (
        "premier@guichet.region.fr",
        "dossier-2025-0042@guichet.region.fr",
    )
    assert mail.subject == "Demande de bourse"
    assert mail.from_name == "Jeanne Dupont"
    assert mail.from_address == "jeanne.dupont@exemple.fr"  # lowercased
    assert mail.reply_to_address is None
    assert mail.to_addresses == ("contact@guichet.region.fr", "transports@region.fr")
    assert mail.date == datetime(2025, 3, 3, 9, 15, tzinfo=UTC)
    assert mail.date is not None and mail.date.utcoffset() == timedelta(hours=1)
    assert "ma fille Zoé" in mail.text
    assert "Merci d’avance." in mail.text
    assert "\r" not in mail.text
    assert mail.html is None
    assert mail.attachments == ()
    assert mail.defects == ()
    assert ("Subject", "Demande de bourse") in mail.headers


def test_latin1_quoted_printable_and_date_without_zone_is_utc() -> None:
    mail = parse("latin1_qp.eml")
    assert mail.text == (
        "Bonjour,\nJ'ai reçu un courrier concernant la cantine de l'élève.\nÀ bientôt"
    )
    assert mail.from_name == "François Léger"
    assert mail.date == datetime(2025, 3, 4, 8, 0, tzinfo=UTC)
    assert mail.date is not None and mail.date.tzinfo is not None


def test_windows_1252_euro_and_oe_ligature() -> None:
    mail = parse("windows1252_euro.eml")
    assert mail.text == "Le budget prévu est de 1 500 € pour l'œuvre « Cœur »."
    assert mail.date is not None
    assert mail.date.utcoffset() == timedelta(hours=2)


def test_utf8_declared_but_latin1_is_detected() -> None:
    mail = parse("mislabelled_utf8_latin1.eml")
    assert mail.text == "Le lycée a été fermé à cause de la tempête."
    assert "\ufffd" not in mail.text
    assert any("UTF-8" in d for d in mail.defects)


def test_unknown_charset_falls_back_to_utf8_with_defect() -> None:
    mail = parse("unknown_charset.eml")
    assert mail.text == "Texte en UTF-8 : déjà vu."
    assert any("x-klingon-42" in d for d in mail.defects)


def test_invalid_and_raw_8bit_header_bytes() -> None:
    mail = parse("invalid_utf8_headers.eml")
    assert mail.from_name == "Hélène Béranger"  # raw UTF-8 (RFC 6532) accepted
    assert mail.from_address == "helene@exemple.fr"
    assert mail.subject.startswith("Problème d'accès")  # raw Latin-1 read as Windows-1252
    for name, value in mail.headers:
        assert not any("\udc80" <= ch <= "\udcff" for ch in name + value)
    assert any("windows-1252" in d for d in mail.defects)
    assert mail.text == "Corps."


def test_nul_bytes_removed() -> None:
    mail = parse("nul_bytes.eml")
    assert mail.text == "Bonjour le monde"
    assert "\x00" not in mail.subject
    assert mail.subject == "avec nul"
    assert any("NUL" in d for d in mail.defects)


# -- RFC 2047 / RFC 2231 ------------------------------------------------------------------


def test_rfc2047_subject_q_and_b_words_and_display_name() -> None:
    mail = parse("rfc2047_subject.eml")
    assert mail.subject == "Demande d’aide été Réclamation à propos du lycée"
    assert mail.from_name == "Élodie Martin"
    # a UTF-8 character split across two encoded words is joined before decoding
    assert dict(mail.headers)["X-Split"] == "prix €"
    assert mail.date is None
    assert "date illisible" in mail.defects


def test_rfc2231_filenames_simple_and_continued() -> None:
    mail = parse("rfc2231_filename.eml")
    assert [a.filename for a in mail.attachments] == [
        "avis d’impôt 2024.pdf",
        "pièce d'identité.jpg",
    ]
    assert mail.attachments[0].content == b"%PDF-1.7 impot"
    assert mail.attachments[1].content_type == "image/jpeg"
    assert mail.text == "Ci-joint les pieces."


def test_hostile_filenames_are_sanitised() -> None:
    names = [a.filename for a in parse("evil_filenames.eml").attachments]
    assert len(names) == 7
    for name in names:
        assert "/" not in name and "\\" not in name
        assert not any(ord(ch) < 32 or ch == "\u202e" for ch in name)
        assert 0 < len(name) <= 200
    assert names[0] == "_.._etc_passwd"
    assert names[1] == "C:_Windows_system32_evil.exe"
    assert names[3].startswith("rapport-tres-") and names[3].endswith(".pdf")
    assert names[4] == "piece-jointe-5"  # no filename at all
    assert names[5] == "reçu fiscal.pdf"  # RFC 2047 inside a filename parameter
    assert names[6] == "piece-jointe-7"  # ".." is not a name


# -- HTML -------------------------------------------------------------------------------


def test_html_only_mail_text_has_no_script_style_or_head() -> None:
    mail = parse("html_only.eml")
    assert mail.html is not None and "<script" in mail.html  # raw, not sanitised here
    for hidden in ("alert", "piratage", "color: red", "Titre secret", "encore", "commentaire"):
        assert hidden not in mail.text
    assert mail.text.startswith("Bonjour Madame,")
    assert "transport scolaire & cantine.\nLigne 2\nLigne 3" in mail.text
    assert "- premier point\n- second point" in mail.text
    assert "Paul <Martin>" in mail.text
    assert "> ancien message cité" in mail.text
    assert "\n\n\n" not in mail.text


def test_html_to_text_rules() -> None:
    html = (
        "<html><head><title>t</title><style>x{}</style></head><body>"
        "<h1>Titre</h1><p>Un&nbsp;&eacute;l&egrave;ve<br>suivant</p><p></p><p></p>"
        "<ol><li>un</li><li>deux</li></ol><table><tr><td>Nom</td><td>Dupont</td></tr></table>"
        "<pre>  code\n    indent</pre><script>evil()</script></body></html>"
    )
    assert html_to_text(html) == (
        "Titre\n\nUn élève\nsuivant\n\n- un\n- deux\n\nNom Dupont\n\n  code\n    indent"
    )


def test_html_to_text_is_linear_on_malformed_markup() -> None:
    start = time.perf_counter()
    for hostile in ("<a" * 200_000, "<!--" * 200_000, "<![" * 200_000, "</" * 200_000):
        assert isinstance(html_to_text(hostile), str)
    assert html_to_text("<p>fin <b>non fermée") == "fin non fermée"
    assert html_to_text("<head><title>x</title><p>corps sans body") == "corps sans body"
    assert time.perf_counter() - start < 20


# -- MIME structure -----------------------------------------------------------------------


def test_multipart_alternative_prefers_plain_and_keeps_html() -> None:
    mail = parse("alternative.eml")
    assert mail.text == "Version texte : réponse attendue."
    assert mail.html == "<html><body><p>Version <b>HTML</b> : autre texte.</p></body></html>"
    assert "multi-part message" not in mail.text  # the preamble is not body text


def test_multipart_mixed_pdf_round_trips_exactly() -> None:
    mail = parse("mixed_pdf.eml")
    assert mail.text == "Voici le formulaire rempli.\n\nEt un second paragraphe."
    assert len(mail.attachments) == 1
    pdf = mail.attachments[0]
    assert pdf == ParsedAttachment(
        filename="formulaire.pdf",
        content_type="application/pdf",  # declared "application/PDF", lowercased
        content=PDF_BYTES,
        inline=False,
        content_id=None,
    )
    assert hashlib.sha256(pdf.content).digest() == hashlib.sha256(PDF_BYTES).digest()


def test_inline_image_with_content_id() -> None:
    mail = parse("inline_image.eml")
    assert mail.text == "Voir la photo [image: nid.png]"
    assert mail.html is not None and "cid:nid@exemple.fr" in mail.html
    image, gif = mail.attachments
    assert (image.filename, image.content_type, image.inline) == ("nid.png", "image/png", True)
    assert image.content_id == "nid@exemple.fr"
    assert image.content == PNG_BYTES
    # related part with a Content-ID but no Content-Disposition: inline too, fallback name
    assert (gif.filename, gif.inline, gif.content_id) == (
        "piece-jointe-2",
        True,
        "sans-disposition@exemple.fr",
    )


def test_forwarded_message_rfc822() -> None:
    mail = parse("forwarded_rfc822.eml")
    assert mail.text == (
        "Je vous transfère le message reçu.\n\n"
        f"{FORWARD_MARKER}\n"
        "De : Service Transports Région <transports@region.fr>\n"
        "Date : Fri, 28 Feb 2025 17:02:00 +0100\n"
        "Objet : Refus de prise en charge n° 1234\n\n"
        "Votre demande est refusée."
    )
    assert [(a.filename, a.content) for a in mail.attachments] == [
        ("decision.pdf", b"%PDF-1.4 decision")
    ]


def test_winmail_dat_is_kept_as_attachment() -> None:
    mail = parse("winmail_dat.eml")
    assert [(a.filename, a.content_type) for a in mail.attachments] == [
        ("winmail.dat", "application/ms-tnef")
    ]
    assert mail.attachments[0].content.startswith(b"\x78\x9f\x3e\x22")
    assert mail.text == "Voir piece jointe."


def test_missing_boundary_is_guessed() -> None:
    mail = parse("missing_boundary.eml")
    assert mail.text == "Texte retrouvé malgré tout."
    assert [(a.filename, a.content) for a in mail.attachments] == [
        ("data.bin", b"\x00\x01\x02\x03\x04")
    ]
    assert any("boundary" in d for d in mail.defects)


def test_truncated_mime_keeps_what_arrived() -> None:
    mail = parse("truncated_mime.eml")
    assert mail.text == "Le message est coupe."
    assert len(mail.attachments) == 1
    partial = mail.attachments[0].content
    assert 0 < len(partial) < len(PDF_BYTES)
    assert PDF_BYTES.startswith(partial)
    assert any("tronqué" in d for d in mail.defects)


def test_nesting_deeper_than_limit_is_cut_with_defect() -> None:
    raw = b"".join(
        b'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (i, i)
        for i in range(40)
    )
    mail = parse_email(raw + b"Content-Type: text/plain\r\n\r\ntout au fond\r\n")
    assert mail.text == ""
    assert any("imbrication" in d for d in mail.defects)


# -- limits and garbage -------------------------------------------------------------------


def test_one_megabyte_header_line_is_fast_and_bounded() -> None:
    raw = (
        b"From: a@exemple.fr\r\nSubject: "
        + b"x" * 1_000_000
        + b"\r\nX-Long: "
        + b"=?utf-8?q?y?= " * 70_000
        + b"\r\n\r\ncorps\r\n"
    )
    start = time.perf_counter()
    mail = parse_email(raw)
    assert time.perf_counter() - start < 10
    assert len(mail.subject) == 500
    assert all(len(value) <= 2000 for _, value in mail.headers)
    assert mail.text == "corps"
    assert any("trop long" in d for d in mail.defects)


def test_two_thousand_tiny_attachments_respect_max_attachments() -> None:
    parts = b"".join(
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="f%d.bin"\r\n\r\n%d\r\n' % (i, i)
        for i in range(2000)
    )
    raw = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    mail = parse_email(raw)
    assert len(mail.attachments) == 100
    assert mail.attachments[-1] == ParsedAttachment(
        "f99.bin", "application/octet-stream", b"99", False, None
    )
    assert any("1900" in d for d in mail.defects)
    assert len(parse_email(raw, max_attachments=5).attachments) == 5
    assert len(parse_email(raw, max_attachments=2500).attachments) == 2000


def test_body_over_two_megabytes_is_truncated() -> None:
    raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "é".encode() * 2_500_000
    mail = parse_email(raw)
    assert len(mail.text) == MAX_TEXT_CHARS
    assert set(mail.text) == {"é"}
    assert any("tronqué" in d for d in mail.defects)


def test_garbage_bytes_and_empty_input_never_raise() -> None:
    garbage = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(600))  # 19 kB
    mail = parse_email(garbage)
    assert isinstance(mail, ParsedEmail)
    assert "\x00" not in mail.text
    for raw in (b"", b"\r\n\r\n", b"\x00", b":", b"Content-Type: multipart/mixed\r\n\r\n--"):
        result = parse_email(raw)
        assert isinstance(result, ParsedEmail)
    empty = parse_email(b"")
    assert (empty.text, empty.subject, empty.message_id, empty.attachments) == ("", "", None, ())
    assert empty.defects == ("message vide",)


def test_garbage_identifiers_and_addresses() -> None:
    raw = (
        b"Message-ID: pas un identifiant\r\n"
        b"In-Reply-To: <a@b> garbage <c@d>\r\n"
        b"From: Pas une adresse <jean@@exemple>\r\n"
        b"Reply-To: =?utf-8?q?Dupont=2C_Jean?= <Jean.Dupont@Exemple.fr>\r\n"
        b"Date: Tue, 4 Mar 2025 08:00:00\r\n\r\nx\r\n"
    )
    mail = parse_email(raw)
    assert mail.message_id is None
    assert mail.in_reply_to == ("a@b", "c@d")
    assert mail.from_address is None
    assert mail.reply_to_address == "jean.dupont@exemple.fr"
    assert mail.date == datetime(2025, 3, 4, 8, 0, tzinfo=UTC)


# -- quoted replies ----------------------------------------------------------------------


def test_strip_quoted_reply_french_gmail() -> None:
    assert strip_quoted_reply(parse("reply_fr_gmail.eml").text) == (
        "Merci, je joins le justificatif demandé.\n\nEt j'ajoute une précision sous la citation."
    )


def test_strip_quoted_reply_english() -> None:
    assert strip_quoted_reply(parse("reply_en.eml").text) == "Thanks, the form is attached."


def test_strip_quoted_reply_outlook_french() -> None:
    mail = parse("reply_outlook_fr.eml")
    assert "Envoyé\xa0: lundi" in mail.text
    assert strip_quoted_reply(mail.text) == (
        "Bonjour,\nLe dossier est complet, nous le transmettons."
    )


def test_strip_quoted_reply_variants() -> None:
    outlook_en = (
        "Fine by me.\n\nFrom: Guichet <contact@guichet.region.fr>\n"
        "Sent: Monday, March 3, 2025 10:15 AM\nTo: me@example.com\nSubject: x\n\nold"
    )
    assert strip_quoted_reply(outlook_en) == "Fine by me."
    assert strip_quoted_reply("Oui.\n-----Original Message-----\nancien") == "Oui."
    assert strip_quoted_reply("Oui.\nEnvoyé depuis mon mobile\n") == "Oui."
    assert strip_quoted_reply("Le 03/03/2025 à 10:15, X a écrit :\nancien non cité") == ""
    # a forwarded message is content, not a quote
    forwarded = parse("forwarded_rfc822.eml").text
    assert "Votre demande est refusée." in strip_quoted_reply(forwarded)
    # an ordinary sentence starting with "Le" is kept
    assert strip_quoted_reply("Le 3 mars, je suis venu.") == "Le 3 mars, je suis venu."


# -- module hygiene ----------------------------------------------------------------------


def test_parsing_module_does_not_import_django() -> None:
    tree = ast.parse(Path(parsing.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert "django" not in imported
    assert "guichet" not in imported


# -- fuzzing -----------------------------------------------------------------------------

FUZZ_SEEDS = [
    eml(name)
    for name in (
        "mixed_pdf.eml",
        "forwarded_rfc822.eml",
        "inline_image.eml",
        "rfc2231_filename.eml",
        "rfc2047_subject.eml",
        "html_only.eml",
        "missing_boundary.eml",
        "invalid_utf8_headers.eml",
    )
]
TOKENS = [
    b"\r\n",
    b"\n\n",
    b"--",
    b'"',
    b";",
    b"=?utf-8?b?",
    b"?=",
    b"\x00",
    b"\xff\xfe",
    b"<",
    b"<!--",
    b"=\r\n",
    b"Content-Type: multipart/mixed; boundary=",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"filename*0*=",
    b"charset=",
]


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(FUZZ_SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        pos = draw(st.integers(min_value=0, max_value=len(data)))
        if op == "flip" and data:
            pos = min(pos, len(data) - 1)
            data[pos] = draw(st.integers(min_value=0, max_value=255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=24))
        else:
            del data[pos : pos + draw(st.integers(min_value=1, max_value=64))]
    return bytes(data)


@settings(
    max_examples=200,
    deadline=None,
    database=None,  # leave no .hypothesis/ folder in the work tree
    suppress_health_check=[HealthCheck.too_slow],
)
@given(mutated_messages())
def test_mutated_messages_never_raise(raw: bytes) -> None:
    mail = parse_email(raw)
    assert isinstance(mail, ParsedEmail)
    assert "\x00" not in mail.text
    assert len(mail.subject) <= 500
    assert mail.date is None or mail.date.tzinfo is not None
    assert all(len(value) <= 2000 for _, value in mail.headers)
    for attachment in mail.attachments:
        assert isinstance(attachment, ParsedAttachment)
        assert attachment.filename and len(attachment.filename) <= 200
        assert "/" not in attachment.filename and "\\" not in attachment.filename
    assert isinstance(strip_quoted_reply(mail.text), str)
