"""The public pages in a real headless Chromium: smoke test of the citizen's journey + axe-core (WCAG 2.1 AA).

Needs Debian's `chromium` and axe-core (env GUICHET_AXE_PATH); `make pytest` provides both.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from guichet.casework.models import Attachment, Request

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
MOBILE = {"width": 375, "height": 812}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture(scope="module", autouse=True)
def _allow_orm_beside_playwright() -> Iterator[None]:
    # Playwright's sync API keeps an asyncio loop running in this thread, so Django refuses ORM
    # calls ("SynchronousOnlyOperation") from the tests and the DB fixtures' teardown. The calls
    # really are synchronous: lift the guard for this module only (autouse: set up before, torn
    # down after, the browser), so other modules keep Django's check.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def axe_source() -> str:
    path = os.environ.get("GUICHET_AXE_PATH")
    if not path:
        pytest.fail("GUICHET_AXE_PATH is not set: run `make pytest`, or install axe-core "
                    "(npm install --prefix var/axe axe-core@4.10) and export GUICHET_AXE_PATH=.../axe.min.js")
    if not Path(path).is_file():
        pytest.fail(f"GUICHET_AXE_PATH={path} does not exist: install axe-core (npm install --prefix var/axe axe-core@4.10)")
    return Path(path).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's `chromium` is not installed (apt-get install -y chromium; `make pytest` does it)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def site(live_server: Any, settings: Any, directory: Any) -> str:
    # Links in the acknowledgement must lead back to this test server.
    settings.GUICHET_PUBLIC_URL = live_server.url
    settings.GUICHET_PUBLIC_RATE_LIMIT = 1000
    return str(live_server.url)


def _context(browser: Browser, **kwargs: Any) -> BrowserContext:
    # bypass_csp lets axe be injected; the app's own pages never need it (no inline script).
    context = browser.new_context(bypass_csp=True, locale="fr-FR", **kwargs)
    context.set_default_timeout(10_000)
    return context


def assert_accessible(page: Page, axe_source: str) -> None:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source)
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,"
        " nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))})))",
        WCAG_TAGS,
    )
    if result:
        lines = [f"axe-core: {len(result)} violation(s) on {page.url}"]
        for violation in result:
            lines.append(f"- [{violation['impact']}] {violation['id']}: {violation['help']} ({violation['helpUrl']})")
            for node in violation["nodes"][:5]:
                summary = " ".join((node["summary"] or "").split())
                lines.append(f"    {node['target']}: {summary}")
        pytest.fail("\n".join(lines), pytrace=False)


def assert_no_horizontal_scroll(page: Page) -> None:
    # WCAG 1.4.10 (reflow): at 320-375 CSS px nothing may force a horizontal scroll.
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls horizontally by {overflow}px at {page.viewport_size}"


def _fill_valid(page: Page, *, subject: str, message: str) -> None:
    page.get_by_label("Nom et prénom, ou raison sociale").fill("Claire Dupont")
    page.get_by_label("Adresse électronique").fill("claire.dupont@example.org")
    page.get_by_label("Objet de votre demande").fill(subject)
    page.get_by_label("Votre message").fill(message)


def test_home_page_is_accessible(browser: Browser, site: str, axe_source: str) -> None:
    context = _context(browser)
    page = context.new_page()
    try:
        page.goto(site + "/")
        assert page.get_attribute("html", "lang") == "fr"
        expect(page.locator("h1")).to_have_count(1)
        skip = page.locator("a.skip-link")
        expect(skip).to_have_attribute("href", "#contenu")
        expect(page.locator("#contenu")).to_have_count(1)
        # the skip link is the first thing the keyboard reaches, and shows when focused
        page.keyboard.press("Tab")
        expect(skip).to_be_focused()
        expect(skip).to_be_in_viewport()
        expect(page.locator("body")).to_contain_text("partiellement conforme")
        expect(page.get_by_role("link", name="Déclaration d'accessibilité")).to_be_visible()
        assert_accessible(page, axe_source)
    finally:
        context.close()


def test_citizen_writes_reviews_sends_and_tracks_on_a_phone(browser: Browser, site: str, axe_source: str) -> None:
    context = _context(browser, viewport=MOBILE, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        # the form is accessible on a narrow screen
        page.goto(site + "/demande/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Faire une demande")
        assert_accessible(page, axe_source)
        assert_no_horizontal_scroll(page)

        # an empty form: a summary announced as an alert, and the faulty fields marked invalid
        page.get_by_role("button", name="Relire ma demande").click()
        summary = page.get_by_role("alert")
        expect(summary).to_contain_text("Le formulaire contient")
        for field in ("name", "email", "subject", "message"):
            expect(page.locator(f"#id_{field}")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#id_phone")).not_to_have_attribute("aria-invalid", "true")
        assert page.title().startswith("Erreur")
        assert_accessible(page, axe_source)
        # the summary's links lead to the fields
        summary.get_by_role("link", name=re.compile("^Objet de votre demande")).click()
        expect(page.locator("#id_subject")).to_be_focused()

        # filled in, with a PDF
        _fill_valid(page, subject="Chauffage en panne au lycée",
                    message="Bonjour,\nle chauffage du lycée Ampère est en panne depuis lundi.\nMerci.")
        page.get_by_label("Pièces jointes").set_input_files({"name": "devis-chauffage.pdf", "mimeType": "application/pdf", "buffer": PDF})
        page.get_by_role("button", name="Relire ma demande").click()

        # the review page lists what will be sent
        expect(page.get_by_role("heading", level=1)).to_have_text("Relisez votre demande avant de l'envoyer")
        review = page.locator("dl.review")
        for value in ("Claire Dupont", "claire.dupont@example.org", "Chauffage en panne au lycée",
                      "le chauffage du lycée Ampère est en panne", "devis-chauffage.pdf"):
            expect(review).to_contain_text(value)
        assert_accessible(page, axe_source)
        assert_no_horizontal_scroll(page)

        # sent: the acknowledgement, with its number, legal mentions and personal tracking link
        page.get_by_role("button", name="Envoyer ma demande").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Votre demande est bien reçue")
        number = page.locator("dl.facts .tracking-number").inner_text().strip()
        prefix = re.escape(django_settings.GUICHET_TRACKING_PREFIX)
        assert re.fullmatch(rf"{prefix}-\d{{4}}-\d{{6}}", number), number
        body = page.locator("main")
        expect(body).to_contain_text("réputée rejetée")
        expect(body).to_contain_text("recours")
        tracking = page.locator("main a[href*='/suivi/']")
        expect(tracking).to_have_count(1)
        assert_accessible(page, axe_source)
        assert_no_horizontal_scroll(page)

        request = Request.objects.get(tracking_number=number)
        attachment = Attachment.objects.get(message__request=request)
        assert attachment.content_type == "application/pdf"
        assert attachment.filename == "devis-chauffage.pdf"

        # the tracking page shows the status and the citizen's message
        tracking.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(number)
        expect(page.locator(".status")).to_have_text(request.get_status_display())
        expect(page.locator(".thread")).to_contain_text("le chauffage du lycée Ampère est en panne")
        expect(page.locator(".thread")).to_contain_text("devis-chauffage.pdf")
        assert_accessible(page, axe_source)
        assert_no_horizontal_scroll(page)
    finally:
        context.close()


def test_hostile_message_is_shown_as_text(browser: Browser, site: str, axe_source: str) -> None:
    # bypass_csp is on: escaping alone must keep the markup inert, the CSP is not helping here
    context = _context(browser)
    page = context.new_page()
    try:
        page.goto(site + "/demande/")
        _fill_valid(page, subject="Test <b>gras</b>", message=f"Bonjour {HOSTILE} fin")
        page.get_by_role("button", name="Relire ma demande").click()
        expect(page.locator("dl.review")).to_contain_text(HOSTILE)
        assert page.evaluate("typeof window.__pwned") == "undefined"

        page.get_by_role("button", name="Envoyer ma demande").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Votre demande est bien reçue")
        page.locator("main a[href*='/suivi/']").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Suivi de votre demande")

        thread = page.locator(".thread")
        expect(thread).to_contain_text(HOSTILE)
        expect(page.locator("main")).to_contain_text("Test <b>gras</b>")
        expect(page.locator("main script, main img, main b")).to_have_count(0)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert_accessible(page, axe_source)
    finally:
        context.close()
