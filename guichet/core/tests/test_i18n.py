"""French by default, English through Django i18n: Accept-Language, the footer switcher, the catalogue."""

from __future__ import annotations

import ast
import gettext
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

LOCALE_DIR = Path(settings.LOCALE_PATHS[0]) / "en" / "LC_MESSAGES"
PO_PATH = LOCALE_DIR / "django.po"
MO_PATH = LOCALE_DIR / "django.mo"

FRENCH_HOME = "Une seule adresse pour toutes vos demandes à la Région"
ENGLISH_HOME = "One address for all your requests to the Region"


def html_lang(content: str) -> str:
    match = re.search(r'<html lang="([^"]+)"', content)
    assert match, "no <html lang> attribute"
    return match.group(1)


# --------------------------------------------------------------------------------------
# A small .po reader (polib is not a dependency)
# --------------------------------------------------------------------------------------


def po_entries(path: Path) -> list[dict[str, Any]]:
    """Entries of a .po file: {"flags", "msgctxt", "msgid", "msgid_plural", "msgstr" (str or list)}; the header is skipped."""
    entries: list[dict[str, Any]] = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry: dict[str, Any] = {"flags": set(), "msgctxt": None, "msgid_plural": None}
        plural: dict[int, str] = {}
        key: str | None = None
        for line in block.strip().splitlines():
            if line.startswith("#~"):  # obsolete entry, ignored by msgfmt
                key = None
                break
            if line.startswith("#,"):
                entry["flags"].update(flag.strip() for flag in line[2:].split(","))
                continue
            if line.startswith("#"):
                continue
            match = re.match(r"^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])? (\".*\")$", line)
            if match:
                key, index, literal = match.group(1), match.group(2), match.group(3)
                value = ast.literal_eval(literal)
                if index is not None:
                    key = f"msgstr[{index}]"
                    plural[int(index)] = value
                else:
                    entry[key] = value
            elif line.startswith('"') and key:
                value = ast.literal_eval(line)
                if key.startswith("msgstr["):
                    index_ = int(key[7:-1])
                    plural[index_] += value
                else:
                    entry[key] += value
        if "msgid" not in entry or entry["msgid"] == "":
            continue
        entry["msgstr"] = [plural[i] for i in sorted(plural)] if plural else entry.get("msgstr", "")
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------


def test_home_is_french_by_default(client: Client, directory: dict[str, Any]) -> None:
    response = client.get("/")
    content = response.content.decode()
    assert response.status_code == 200
    assert html_lang(content) == "fr"
    assert FRENCH_HOME in content
    assert ENGLISH_HOME not in content


def test_home_in_english_from_accept_language(client: Client, directory: dict[str, Any]) -> None:
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="en")
    content = response.content.decode()
    assert response.status_code == 200
    assert html_lang(content) == "en"
    assert ENGLISH_HOME in content
    assert "Skip to content" in content
    assert FRENCH_HOME not in content


def test_language_switcher_is_a_labelled_no_script_form(
    client: Client, directory: dict[str, Any]
) -> None:
    content = client.get("/demande/").content.decode()
    form = re.search(
        r'<form class="language-switcher" action="/i18n/setlang/" method="post">(.*?)</form>',
        content,
        re.S,
    )
    assert form, "footer language switcher missing"
    body = form.group(1)
    assert 'name="csrfmiddlewaretoken"' in body
    assert '<input type="hidden" name="next" value="/demande/">' in body
    assert '<label for="language-select">' in body
    assert '<select id="language-select" name="language"' in body
    assert '<option value="fr" lang="fr" selected>Français</option>' in body
    assert '<option value="en" lang="en">English</option>' in body
    assert '<button type="submit"' in body
    assert "<script" not in content


def test_set_language_switches_to_english_and_back(directory: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get("/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token
    response = client.post(
        "/i18n/setlang/", {"language": "en", "next": "/", "csrfmiddlewaretoken": token.group(1)}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"

    content = client.get("/").content.decode()
    assert html_lang(content) == "en"
    assert ENGLISH_HOME in content
    assert '<option value="en" lang="en" selected>English</option>' in content

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', content)
    assert token
    client.post(
        "/i18n/setlang/", {"language": "fr", "next": "/", "csrfmiddlewaretoken": token.group(1)}
    )
    content = client.get("/").content.decode()
    assert html_lang(content) == "fr"
    assert FRENCH_HOME in content


def test_request_form_labels_in_english(client: Client, directory: dict[str, Any]) -> None:
    content = client.get("/demande/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    for label in (
        "You are writing as",
        "Full name, or company name",
        "Email address",
        "Telephone",
        "Postal address",
        "SIRET number",
        "Subject of your request",
        "Your message",
        "Attachments",
    ):
        assert label in content, label
    assert "Individual" in content  # Requester.Kind choice label
    assert "files at most" in content  # help text built per request
    for french in (
        "Adresse électronique",
        "Objet de votre demande",
        "Pièces jointes",
        "Particulier",
    ):
        assert french not in content, french


def test_request_form_errors_in_english(client: Client, directory: dict[str, Any]) -> None:
    content = client.post(
        "/demande/", {"kind": "person"}, HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "Enter your name, or the name of your company or association." in content
    assert "Write your message." in content


# --------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------


def test_every_msgid_is_translated_and_the_mo_matches_the_po() -> None:
    entries = po_entries(PO_PATH)
    assert len(entries) > 100
    placeholder = re.compile(r"%\([a-z_]+\)[-+ #0-9.]*[sdf]|\{\{.*?\}\}")
    for entry in entries:
        assert "fuzzy" not in entry["flags"], entry["msgid"]
        translations = entry["msgstr"] if isinstance(entry["msgstr"], list) else [entry["msgstr"]]
        assert translations and all(t.strip() for t in translations), (
            f"untranslated: {entry['msgid']!r}"
        )
        expected = sorted(placeholder.findall(entry["msgid"]))
        for translation in translations:
            assert sorted(placeholder.findall(translation)) == expected, entry["msgid"]

    # The committed .mo is what a machine without gettext serves: it must hold exactly the .po's translations.
    raw = MO_PATH.read_bytes()
    magic, _revision, count = struct.unpack("<3I", raw[:12])
    assert magic == 0x950412DE
    assert count == len(entries) + 1  # + the header entry
    with MO_PATH.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    for entry in entries:
        msgid = (
            entry["msgid"]
            if entry["msgctxt"] is None
            else f"{entry['msgctxt']}\x04{entry['msgid']}"
        )
        if entry["msgid_plural"] is None:
            assert catalog.gettext(msgid) == entry["msgstr"], (
                f"stale .mo for {entry['msgid']!r}: run make messages"
            )
        else:
            assert catalog.ngettext(msgid, entry["msgid_plural"], 1) == entry["msgstr"][0]
            assert catalog.ngettext(msgid, entry["msgid_plural"], 2) == entry["msgstr"][1]
