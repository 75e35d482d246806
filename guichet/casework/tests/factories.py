"""Requests made through the real intake pipeline, for tests that start from an existing one."""

from __future__ import annotations

import json
import secrets

from guichet.casework.inbound import submission_process
from guichet.casework.models import Request
from guichet.intake.inbound import InboundMessage
from guichet.intake.services import submission_receive


def make_request(*, subject: str, body: str, email: str = "claire.dupont@example.org", name: str = "Claire Dupont") -> Request:
    token = secrets.token_hex(8)
    raw = json.dumps({"kind": "person", "name": name, "email": email, "subject": subject, "message": body, "attachments": [], "form_token": token}).encode()
    submission, _ = submission_receive(inbound=InboundMessage(channel="web", idempotency_key=f"form:{token}", raw=raw))
    request_id = submission_process(submission_id=submission.pk)
    return Request.objects.select_related("service", "requester").get(pk=request_id)
