"""Sender trust: Authentication-Results from a trusted MTA, else real DKIM signatures."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from dkim import dknewkey

from guichet.intake.channels.email.parsing import parse_email
from guichet.intake.channels.email.trust import TrustVerdict, sender_trust

TRUSTED = frozenset({"mx.region.fr"})

BASE = (
    b"From: Claire Martin <claire@example.org>\r\n"
    b"To: contact@region.fr\r\n"
    b"Subject: Demande de bourse\r\n"
    b"Date: Mon, 03 Mar 2025 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"\r\n"
    b"Bonjour,\r\nJe souhaite une bourse pour mon fils.\r\n"
)


def _judge(raw: bytes, dnsfunc: Callable[[str], bytes | str | None] | None = None) -> TrustVerdict:
    parsed = parse_email(raw)
    return sender_trust(
        raw=raw,
        headers=parsed.headers,
        from_address=parsed.from_address,
        trusted_authserv_ids=TRUSTED,
        dnsfunc=dnsfunc if dnsfunc is not None else _no_dns,
    )


def _no_dns(name: str) -> bytes | None:
    raise AssertionError(f"no DNS lookup expected, got {name}")


def _with_ar(*values: str, raw: bytes = BASE) -> bytes:
    lines = b"".join(f"Authentication-Results: {v}\r\n".encode() for v in values)
    return lines + raw


# --------------------------------------------------------------------------------------
# Authentication-Results
# --------------------------------------------------------------------------------------


def test_trusted_dmarc_pass_is_verified_with_a_french_summary() -> None:
    raw = _with_ar(
        "mx.region.fr 1; dkim=pass (2048-bit key; secure) header.d=example.org"
        " header.i=@example.org header.s=sel; spf=pass (sender SPF authorized)"
        " smtp.mailfrom=claire@example.org; dmarc=pass (p=REJECT sp=REJECT dis=NONE)"
        " header.from=example.org"
    )

    verdict = _judge(raw)

    assert verdict == TrustVerdict(
        verification="verified",
        spf="pass",
        dkim="pass",
        dmarc="pass",
        summary="SPF : pass, DKIM : pass (example.org), DMARC : pass (selon mx.region.fr)",
        authserv_id="mx.region.fr",
    )


def test_authserv_id_is_matched_case_insensitively() -> None:
    verdict = _judge(_with_ar("MX.Region.FR; dmarc=pass header.from=example.org"))

    assert verdict.verification == "verified"


def test_untrusted_authserv_id_is_ignored_even_when_it_says_pass() -> None:
    raw = _with_ar(
        "mx.attacker.example; spf=pass smtp.mailfrom=example.org;"
        " dkim=pass header.d=example.org; dmarc=pass header.from=example.org"
    )

    verdict = _judge(raw)

    assert verdict.verification == "unverified"
    assert verdict.authserv_id is None
    assert (verdict.spf, verdict.dkim, verdict.dmarc) == ("none", "none", "none")
    assert "non signé" in verdict.summary


def test_topmost_trusted_header_wins_over_a_forged_one_below() -> None:
    # The genuine header is added on top by our MTA; the forged one came with the message.
    raw = _with_ar(
        "mx.attacker.example; dmarc=pass header.from=example.org",
        "mx.region.fr; spf=fail smtp.mailfrom=example.org; dkim=none; dmarc=fail"
        " header.from=example.org",
        "mx.region.fr; spf=pass; dkim=pass header.d=example.org; dmarc=pass",
    )

    verdict = _judge(raw)

    assert verdict.verification == "failed"
    assert (verdict.spf, verdict.dkim, verdict.dmarc) == ("fail", "none", "fail")


def test_aligned_dkim_pass_without_dmarc_is_verified() -> None:
    verdict = _judge(_with_ar("mx.region.fr; spf=none; dkim=pass header.d=example.org"))

    assert verdict.verification == "verified"
    assert verdict.dmarc == "none"


def test_dkim_identity_is_used_when_header_d_is_missing() -> None:
    verdict = _judge(_with_ar("mx.region.fr; dkim=pass header.i=@example.org"))

    assert verdict.verification == "verified"


def test_dkim_pass_from_another_domain_is_not_enough() -> None:
    verdict = _judge(
        _with_ar("mx.region.fr; spf=pass; dkim=pass header.d=mailer.example.net; dmarc=none")
    )

    assert verdict.verification == "unverified"
    assert verdict.dkim == "pass"
    assert "mailer.example.net, domaine différent de l'expéditeur" in verdict.summary


def test_the_aligned_signature_is_reported_among_several() -> None:
    verdict = _judge(
        _with_ar(
            "mx.region.fr; dkim=pass header.d=mailer.example.net;"
            " dkim=fail header.d=example.org; dkim=pass header.d=example.org"
        )
    )

    assert verdict.verification == "verified"
    assert "DKIM : pass (example.org)" in verdict.summary


@pytest.mark.parametrize(
    ("from_address", "signer", "expected"),
    [
        ("claire@mail.example.org", "example.org", "verified"),  # the parent signs
        ("claire@example.org", "mail.example.org", "unverified"),  # a child signs
        ("claire@example.org", "badexample.org", "unverified"),  # suffix, not a parent
        ("claire@example.org", "org", "unverified"),
    ],
)
def test_dkim_alignment(from_address: str, signer: str, expected: str) -> None:
    raw = _with_ar(
        f"mx.region.fr; dkim=pass header.d={signer}",
        raw=BASE.replace(b"claire@example.org", from_address.encode()),
    )

    assert _judge(raw).verification == expected


def test_explicit_dmarc_fail_is_failed() -> None:
    verdict = _judge(
        _with_ar("mx.region.fr; spf=softfail; dkim=fail header.d=example.org; dmarc=fail")
    )

    assert verdict.verification == "failed"
    assert verdict.summary.startswith("SPF : softfail, DKIM : fail (example.org), DMARC : fail")


def test_spf_fail_alone_is_unverified() -> None:
    verdict = _judge(_with_ar("mx.region.fr; spf=fail smtp.mailfrom=example.org; dkim=none"))

    assert verdict.verification == "unverified"
    assert verdict.spf == "fail"


def test_no_result_header_is_unverified() -> None:
    verdict = _judge(_with_ar("mx.region.fr; none"))

    assert verdict.verification == "unverified"
    assert verdict.authserv_id == "mx.region.fr"
    assert (verdict.spf, verdict.dkim, verdict.dmarc) == ("none", "none", "none")


def test_dmarc_pass_for_another_from_domain_is_not_trusted() -> None:
    verdict = _judge(_with_ar("mx.region.fr; dmarc=pass header.from=other.example"))

    assert verdict.verification == "unverified"
    assert "n'est pas celui de l'expéditeur" in verdict.summary


def test_quoted_values_and_semicolons_in_comments_are_parsed() -> None:
    verdict = _judge(
        _with_ar(
            '"mx.region.fr"; dkim=pass (good; really) reason="sig ok; fine"'
            ' header.d="example.org"; dmarc=pass'
        )
    )

    assert verdict.verification == "verified"
    assert verdict.dkim == "pass"


def test_missing_from_address_is_never_verified() -> None:
    raw = _with_ar("mx.region.fr; dkim=pass header.d=example.org; dmarc=pass")
    parsed = parse_email(raw)

    verdict = sender_trust(
        raw=raw,
        headers=parsed.headers,
        from_address=None,
        trusted_authserv_ids=TRUSTED,
        dnsfunc=_no_dns,
    )

    assert verdict.verification == "unverified"


@pytest.mark.parametrize(
    "value",
    [
        "",
        ";;;",
        "(((",
        "mx.region.fr; ===; dkim",
        "mx.region.fr; dkim=p\x00ss",
        "x" * 100_000,
        'mx.region.fr; dkim="unterminated',
        "mx.region.fr; dmarc=" + "(" * 5000,
    ],
)
def test_malformed_headers_never_raise(value: str) -> None:
    verdict = sender_trust(
        raw=BASE,
        headers=(("Authentication-Results", value), ("From", "claire@example.org")),
        from_address="claire@example.org",
        trusted_authserv_ids=TRUSTED,
        dnsfunc=_no_dns,
    )

    assert verdict.verification == "unverified"
    assert verdict.summary


# --------------------------------------------------------------------------------------
# DKIM verified here, with a real key and a resolver stub
# --------------------------------------------------------------------------------------


class _Key:
    def __init__(self, private_pem: bytes, txt_record: str) -> None:
        self.private_pem = private_pem
        self.txt_record = txt_record


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> _Key:
    folder: Path = tmp_path_factory.mktemp("dkim")
    private, dns = folder / "sel.key", folder / "sel.dns"
    dknewkey.GenRSAKeys(str(private), verbose=False)
    dknewkey.ExtractRSADnsPublicKey(str(private), str(dns), verbose=False)
    record = dns.read_text()
    assert re.fullmatch(r"v=DKIM1; k=rsa; h=sha256; p=[A-Za-z0-9+/=]+", record)
    return _Key(private.read_bytes(), record)


class _Resolver:
    """Answers TXT look-ups from a dict, and records them."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = records
        self.asked: list[str] = []

    def __call__(self, name: str) -> str | None:
        self.asked.append(name)
        return self.records.get(name)


def _sign(raw: bytes, key: _Key, domain: str = "example.org", selector: str = "sel") -> bytes:
    signature = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        key.private_pem,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return signature + raw


def test_valid_aligned_signature_is_verified(key: _Key) -> None:
    resolver = _Resolver({"sel._domainkey.example.org": key.txt_record})

    verdict = _judge(_sign(BASE, key), resolver)

    assert resolver.asked == ["sel._domainkey.example.org"]
    assert verdict == TrustVerdict(
        verification="verified",
        spf="none",
        dkim="pass",
        dmarc="none",
        summary=(
            "Aucun résultat d'authentification de confiance ; vérification locale : "
            "DKIM : pass (example.org)"
        ),
    )


def test_tampered_body_is_failed(key: _Key) -> None:
    signed = _sign(BASE, key)
    tampered = signed.replace(b"une bourse", b"un virement")

    verdict = _judge(tampered, _Resolver({"sel._domainkey.example.org": key.txt_record}))

    assert verdict.verification == "failed"
    assert verdict.dkim == "fail"


def test_tampered_signed_header_is_failed(key: _Key) -> None:
    tampered = _sign(BASE, key).replace(b"Subject: Demande", b"Subject: Urgent")

    verdict = _judge(tampered, _Resolver({"sel._domainkey.example.org": key.txt_record}))

    assert verdict.verification == "failed"


def test_valid_signature_of_another_domain_is_unverified(key: _Key) -> None:
    resolver = _Resolver({"sel._domainkey.mailer.example.net": key.txt_record})

    verdict = _judge(_sign(BASE, key, domain="mailer.example.net"), resolver)

    assert verdict.verification == "unverified"
    assert verdict.dkim == "pass"
    assert "mailer.example.net, domaine différent de l'expéditeur" in verdict.summary


def test_aligned_signature_wins_among_several(key: _Key) -> None:
    resolver = _Resolver(
        {
            "sel._domainkey.example.org": key.txt_record,
            "bulk._domainkey.mailer.example.net": key.txt_record,
        }
    )
    twice = _sign(_sign(BASE, key), key, domain="mailer.example.net", selector="bulk")

    verdict = _judge(twice, resolver)

    assert sorted(resolver.asked) == [
        "bulk._domainkey.mailer.example.net",
        "sel._domainkey.example.org",
    ]
    assert verdict.verification == "verified"


def test_missing_key_is_unverified_not_failed(key: _Key) -> None:
    verdict = _judge(_sign(BASE, key), _Resolver({}))

    assert verdict.verification == "unverified"
    assert verdict.dkim == "permerror"


def test_dns_error_is_unverified(key: _Key) -> None:
    def broken(name: str) -> str | None:
        raise TimeoutError(name)

    verdict = _judge(_sign(BASE, key), broken)

    assert verdict.verification == "unverified"
    assert verdict.dkim == "temperror"


def test_garbage_key_record_is_unverified(key: _Key) -> None:
    resolver = _Resolver({"sel._domainkey.example.org": "v=DKIM1; k=rsa; p=AAAA"})

    verdict = _judge(_sign(BASE, key), resolver)

    assert verdict.verification == "unverified"
    assert verdict.dkim == "permerror"


def test_malformed_signature_header_is_unverified() -> None:
    raw = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; garbage\r\n" + BASE

    verdict = _judge(raw, _Resolver({}))

    assert verdict.verification == "unverified"
    assert verdict.dkim == "permerror"


def test_trusted_header_is_preferred_to_local_verification(key: _Key) -> None:
    raw = _with_ar("mx.region.fr; dkim=pass header.d=example.org", raw=_sign(BASE, key))

    verdict = _judge(raw, _no_dns)

    assert verdict.verification == "verified"
    assert verdict.authserv_id == "mx.region.fr"


def test_unsigned_message_without_trusted_header_is_unverified() -> None:
    verdict = _judge(BASE)

    assert verdict.verification == "unverified"
    assert verdict.dkim == "none"
