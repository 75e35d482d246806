"""The agents' back office through HTTP, always with an outsider in the room."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from guichet.casework.models import Attachment, Message, RequestStatus
from guichet.casework.tests.factories import make_request
from guichet.conftest import PASSWORD
from guichet.core.blobs import blob_put
from guichet.core.models import AuditEvent, OutgoingMail
from guichet.routing.models import RoutingRecord

pytestmark = pytest.mark.django_db


def _login(client: Client, user: Any) -> Client:
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def heating(directory: Any) -> Any:
    return make_request(subject="Chauffage", body="Le chauffage du lycée Ampère est en panne depuis lundi.")


@pytest.fixture
def unclear(directory: Any) -> Any:
    return make_request(subject="Question", body="Bonjour, à qui dois-je m'adresser ?")


def test_login_is_required(client: Client, heating: Any) -> None:
    response = client.get(f"/agent/demandes/{heating.tracking_number}/")
    assert response.status_code == 302 and "/agent/connexion/" in response["Location"]


def test_agent_sees_own_service_queue_and_outsider_does_not(client: Client, heating: Any, agent_alice: Any, outsider_oscar: Any) -> None:
    assert heating.service.code == "lycees"
    page = _login(client, agent_alice).get("/agent/").content.decode()
    assert heating.tracking_number in page

    oscar = _login(Client(), outsider_oscar)
    assert heating.tracking_number not in oscar.get("/agent/").content.decode()
    assert oscar.get(f"/agent/demandes/{heating.tracking_number}/").status_code == 404
    response = oscar.post(f"/agent/demandes/{heating.tracking_number}/repondre/", {"body": "intrusion"})
    assert response.status_code == 404
    assert not heating.messages.filter(kind=Message.Kind.REPLY).exists()


def test_request_page_query_count_is_fixed(client: Client, heating: Any, agent_alice: Any, django_assert_max_num_queries: Any) -> None:
    _login(client, agent_alice)
    with django_assert_max_num_queries(20):
        assert client.get(f"/agent/demandes/{heating.tracking_number}/").status_code == 200


def test_reply_goes_to_the_outbox_and_marks_answered(client: Client, heating: Any, agent_alice: Any, django_capture_on_commit_callbacks: Any) -> None:
    _login(client, agent_alice)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/agent/demandes/{heating.tracking_number}/repondre/", {"body": "Un technicien passe jeudi."})
    assert response.status_code == 302
    heating.refresh_from_db()
    assert heating.status == RequestStatus.ANSWERED and heating.answered_at is not None
    mail = OutgoingMail.objects.get(kind=OutgoingMail.Kind.REPLY)
    assert mail.to_address == "claire.dupont@example.org"
    assert "Un technicien passe jeudi." in mail.body_text
    assert mail.in_reply_to  # threads with the citizen's conversation
    assert AuditEvent.objects.filter(verb="request.reply", actor=agent_alice).exists()


def test_empty_reply_is_refused_with_a_message(client: Client, heating: Any, agent_alice: Any) -> None:
    response = _login(client, agent_alice).post(f"/agent/demandes/{heating.tracking_number}/repondre/", {"body": ""})
    assert response.status_code == 400
    assert not OutgoingMail.objects.filter(kind=OutgoingMail.Kind.REPLY).exists()


def test_triage_dispatches_and_the_correction_is_recorded(client: Client, unclear: Any, triage_tina: Any, agent_alice: Any) -> None:
    assert unclear.service is None and unclear.status == RequestStatus.RECEIVED
    assert unclear.tracking_number not in _login(Client(), agent_alice).get("/agent/").content.decode()

    _login(client, triage_tina)
    assert unclear.tracking_number in client.get("/agent/").content.decode()
    response = client.post(f"/agent/demandes/{unclear.tracking_number}/reorienter/", {"service": "lycees", "reason": "Concerne un lycée"})
    assert response.status_code == 302 and response["Location"] == "/agent/"  # tina no longer sees it
    unclear.refresh_from_db()
    assert unclear.service.code == "lycees" and unclear.status == RequestStatus.ROUTED
    record = RoutingRecord.objects.filter(request=unclear, source=RoutingRecord.Source.HUMAN).get()
    assert record.decided_by == triage_tina and record.reason == "Concerne un lycée"


def test_reassign_requires_a_reason(client: Client, heating: Any, agent_alice: Any) -> None:
    response = _login(client, agent_alice).post(f"/agent/demandes/{heating.tracking_number}/reorienter/", {"service": "transports", "reason": ""})
    assert response.status_code == 400
    heating.refresh_from_db()
    assert heating.service.code == "lycees"


def test_forward_to_authority_notifies_authority_and_sender(client: Client, directory: Any, agent_alice: Any) -> None:
    canteen = make_request(subject="Cantine", body="La cantine du lycée est trop chère pour mon fils.")
    assert canteen.service.code == "lycees"
    _login(client, agent_alice).post(
        f"/agent/demandes/{canteen.tracking_number}/transmettre/", {"authority": "ext:departement", "reason": "Il s'agit d'un collège."}
    )
    canteen.refresh_from_db()
    assert canteen.status == RequestStatus.FORWARDED and canteen.authority.code == "ext:departement"
    to_authority = OutgoingMail.objects.get(kind=OutgoingMail.Kind.FORWARD)
    assert to_authority.to_address == directory["ext:departement"].email
    assert "L114-2" in to_authority.subject and "trop chère" in to_authority.body_text
    notice = OutgoingMail.objects.get(kind=OutgoingMail.Kind.NOTICE)
    assert notice.to_address == "claire.dupont@example.org" and directory["ext:departement"].name in notice.body_text
    # the citizen still follows it
    page = Client().get(f"/suivi/{canteen.public_id}/").content.decode()
    assert "Transmise à" in page


def test_status_change_and_invalid_transition(client: Client, heating: Any, agent_alice: Any) -> None:
    _login(client, agent_alice)
    client.post(f"/agent/demandes/{heating.tracking_number}/statut/", {"status": "closed"})
    heating.refresh_from_db()
    assert heating.status == RequestStatus.CLOSED
    response = client.post(f"/agent/demandes/{heating.tracking_number}/statut/", {"status": "rejected_spam"}, follow=True)
    assert "Passage impossible" in response.content.decode()
    heating.refresh_from_db()
    assert heating.status == RequestStatus.CLOSED


def test_attachment_download_is_checked_and_never_inline(client: Client, heating: Any, agent_alice: Any, outsider_oscar: Any) -> None:
    message = heating.messages.get(kind=Message.Kind.CITIZEN)
    attachment = Attachment.objects.create(message=message, blob=blob_put(data=b"<html><script>x</script>"), filename='a"b.html', size=24, content_type="text/plain")
    url = f"/agent/demandes/{heating.tracking_number}/pieces/{attachment.pk}/"
    response = _login(client, agent_alice).get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="ab.html"'
    assert _login(Client(), outsider_oscar).get(url).status_code == 404


def test_internal_notes_stay_internal(client: Client, heating: Any, agent_alice: Any, agent_bob: Any) -> None:
    _login(client, agent_alice).post(f"/agent/demandes/{heating.tracking_number}/note/", {"body": "Voir avec le proviseur"})
    assert "Voir avec le proviseur" in _login(Client(), agent_bob).get(f"/agent/demandes/{heating.tracking_number}/").content.decode()
    assert "Voir avec le proviseur" not in Client().get(f"/suivi/{heating.public_id}/").content.decode()


def _pdf_bytes() -> bytes:
    import subprocess
    import tempfile
    from pathlib import Path

    # A real one-page PDF, written by hand: poppler must be able to render it.
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        b"<< /Length 35 >>\nstream\n0 0 1 rg 20 20 160 160 re f\nendstream",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "t.pdf").write_bytes(out)
        subprocess.run(["pdfinfo", str(Path(folder, "t.pdf"))], check=True, capture_output=True)
    return out


def test_pdf_preview_is_a_picture_never_the_document(client: Client, heating: Any, agent_alice: Any, outsider_oscar: Any) -> None:
    message = heating.messages.get(kind=Message.Kind.CITIZEN)
    pdf = Attachment.objects.create(message=message, blob=blob_put(data=_pdf_bytes()), filename="plan.pdf", size=10, content_type="application/pdf")
    url = f"/agent/demandes/{heating.tracking_number}/pieces/{pdf.pk}/apercu/"
    response = _login(client, agent_alice).get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png" and response.content.startswith(b"\x89PNG")
    assert "sandbox" in response["Content-Security-Policy"]
    assert "aperçu" in client.get(f"/agent/demandes/{heating.tracking_number}/").content.decode()
    assert _login(Client(), outsider_oscar).get(url).status_code == 404


def test_triage_transmits_an_outside_request_in_one_click(client: Client, directory: Any, triage_tina: Any, settings: Any) -> None:
    settings.GUICHET_AUTO_FORWARD_MIN_CONFIDENCE = 1.01  # keep it for a human
    passport = make_request(subject="Passeport", body="Comment renouveler mon passeport et ma carte grise ?")
    assert passport.service is None and passport.status == RequestStatus.RECEIVED
    page = _login(client, triage_tina).get("/agent/").content.decode()
    assert "Transmettre à Services de l" in page
    client.post(f"/agent/demandes/{passport.tracking_number}/transmettre/", {"authority": "ext:etat", "reason": "Hors compétence de la Région : suggestion du routage confirmée."})
    passport.refresh_from_db()
    assert passport.status == RequestStatus.FORWARDED and passport.authority.code == "ext:etat"


def test_confident_outside_request_is_transmitted_without_waiting(directory: Any, settings: Any) -> None:
    settings.GUICHET_AUTO_FORWARD_MIN_CONFIDENCE = 0.5
    passport = make_request(subject="Passeport", body="Comment renouveler mon passeport et ma carte grise ?")
    assert passport.status == RequestStatus.FORWARDED and passport.authority.code == "ext:etat"
    kinds = set(OutgoingMail.objects.filter(request=passport).values_list("kind", flat=True))
    assert kinds == {OutgoingMail.Kind.FORWARD, OutgoingMail.Kind.NOTICE}  # a notice instead of the Région's AR
    record = passport.routing_records.get()
    assert record.applied and record.source == RoutingRecord.Source.AUTOMATIC
