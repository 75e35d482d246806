"""Sender trust: may an agent believe the From address of an inbound e-mail?

``sender_trust`` is pure (no Django, no ORM) and never raises.  It prefers the verdict of
the Région's own MTA, read from an ``Authentication-Results`` header (RFC 8601) whose
authserv-id is configured as trusted: anyone can write that header, so one from an unknown
authserv-id is ignored.  Without such a header it checks the DKIM signatures itself with
dkimpy.  SPF cannot be checked here (the connecting IP is the MTA's, not the sender's).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import dkim

__all__ = ["DnsFunc", "TrustVerdict", "sender_trust"]

logger = logging.getLogger(__name__)

Verification = Literal["verified", "unverified", "failed"]
#: Looks up the TXT record of a DNS name such as ``sel._domainkey.example.org``.
DnsFunc = Callable[[str], bytes | str | None]

_MAX_AR_VALUE = 4000
_MAX_SIGNATURES = 5  # each one may cost a DNS lookup
_DNS_TIMEOUT = 5
_RESULT = re.compile(r"[a-z]{1,20}")
_PAIR = re.compile(r'([A-Za-z0-9_.\-/]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;"]+)')


@dataclass(frozen=True)
class TrustVerdict:
    verification: Verification
    spf: str
    dkim: str
    dmarc: str
    #: For agents, in French, e.g. "SPF : pass, DKIM : pass (example.org), DMARC : pass".
    summary: str
    #: The trusted authserv-id the verdict comes from; None when DKIM was checked here.
    authserv_id: str | None = None


@dataclass(frozen=True)
class _Result:
    method: str
    result: str
    props: dict[str, str]


@dataclass(frozen=True)
class _DkimCheck:
    result: str
    domain: str | None


def sender_trust(
    *,
    raw: bytes,
    headers: tuple[tuple[str, str], ...],
    from_address: str | None,
    trusted_authserv_ids: frozenset[str],
    dnsfunc: DnsFunc | None = None,
) -> TrustVerdict:
    """Judge the sender from the topmost trusted Authentication-Results, else from DKIM."""
    from_domain = _domain_of(from_address)
    try:
        results = _trusted_results(headers, trusted_authserv_ids)
        if results is not None:
            authserv_id, resinfos = results
            return _verdict_from_header(authserv_id, resinfos, from_domain)
        return _verdict_from_dkim(raw, from_domain, dnsfunc)
    except Exception:  # a verdict must never break intake
        logger.exception("Sender trust evaluation failed")
        return TrustVerdict(
            verification="unverified",
            spf="none",
            dkim="none",
            dmarc="none",
            summary="Vérification de l'expéditeur impossible (en-têtes illisibles).",
        )


# --------------------------------------------------------------------------------------
# Authentication-Results (RFC 8601)
# --------------------------------------------------------------------------------------


def _trusted_results(
    headers: Iterable[tuple[str, str]], trusted: frozenset[str]
) -> tuple[str, list[_Result]] | None:
    trusted_ids = {t.strip().lower() for t in trusted if t.strip()}
    for name, value in headers:
        if name.strip().lower() != "authentication-results":
            continue
        parsed = _parse_authentication_results(value)
        # Only the topmost trusted header counts: our MTA adds it last, so any header below
        # bearing the same id came from outside (RFC 8601 section 5).
        if parsed is not None and parsed[0] in trusted_ids:
            return parsed
    return None


def _parse_authentication_results(value: str) -> tuple[str, list[_Result]] | None:
    segments = _split_outside_quotes(_strip_comments(value[:_MAX_AR_VALUE]), ";")
    head = segments[0].split()
    if not head:
        return None
    authserv_id = _unquote(head[0]).lower()
    results: list[_Result] = []
    for segment in segments[1:]:
        pairs = [(k.lower(), _unquote(v)) for k, v in _PAIR.findall(segment)]
        if not pairs:
            continue  # "none" (no-result) or junk
        method = pairs[0][0].split("/")[0]
        result = pairs[0][1].lower()
        props = {k: v for k, v in pairs[1:] if k not in {"reason"}}
        results.append(_Result(method, result if _RESULT.fullmatch(result) else "none", props))
    return authserv_id, results


def _strip_comments(value: str) -> str:
    """Drop RFC 5322 comments (nested parentheses) outside quoted strings."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
        elif quoted:
            quoted = char != '"'
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            quoted = char == '"'
            out.append(char)
    return " ".join("".join(out).split())


def _split_outside_quotes(value: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _verdict_from_header(
    authserv_id: str, results: list[_Result], from_domain: str | None
) -> TrustVerdict:
    spf = _first_result(results, "spf")
    dmarc = _first_result(results, "dmarc")
    dkim_checks = [
        _DkimCheck(r.result, _dkim_domain(r.props)) for r in results if r.method == "dkim"
    ]
    best = _best_dkim(dkim_checks, from_domain)
    dmarc_from = _domain_of(
        next((r.props.get("header.from") for r in results if r.method == "dmarc"), None)
    )
    # A DMARC pass vouches for the From the MTA saw; refuse it if that is not ours.
    dmarc_ours = from_domain is not None and dmarc_from in {None, from_domain}
    if dmarc.result == "pass" and dmarc_ours:
        verification: Verification = "verified"
    elif best.result == "pass" and _aligned(best.domain, from_domain):
        verification = "verified"
    elif dmarc.result == "fail":
        verification = "failed"
    else:
        verification = "unverified"
    summary = (
        f"SPF : {spf.result}, {_dkim_label(best, from_domain)}, DMARC : {dmarc.result}"
        f" (selon {authserv_id})"
    )
    if dmarc.result == "pass" and from_domain is not None and not dmarc_ours:
        summary += " ; le domaine contrôlé par DMARC n'est pas celui de l'expéditeur"
    return TrustVerdict(
        verification=verification,
        spf=spf.result,
        dkim=best.result,
        dmarc=dmarc.result,
        summary=summary,
        authserv_id=authserv_id,
    )


def _first_result(results: list[_Result], method: str) -> _Result:
    return next((r for r in results if r.method == method), _Result(method, "none", {}))


def _dkim_domain(props: dict[str, str]) -> str | None:
    if "header.d" in props:
        return _normalise_domain(props["header.d"])
    identity = props.get("header.i")
    return _domain_of(identity) if identity and "@" in identity else None


# --------------------------------------------------------------------------------------
# Local DKIM verification (no trusted header)
# --------------------------------------------------------------------------------------


def _verdict_from_dkim(
    raw: bytes, from_domain: str | None, dnsfunc: DnsFunc | None
) -> TrustVerdict:
    checks = _verify_signatures(raw, dnsfunc)
    if not checks:
        return TrustVerdict(
            verification="unverified",
            spf="none",
            dkim="none",
            dmarc="none",
            summary=("Aucun résultat d'authentification de confiance et message non signé (DKIM)."),
        )
    best = _best_dkim(checks, from_domain)
    if best.result == "pass" and _aligned(best.domain, from_domain):
        verification: Verification = "verified"
    elif any(check.result == "fail" for check in checks) and best.result != "pass":
        verification = "failed"
    else:
        verification = "unverified"
    return TrustVerdict(
        verification=verification,
        spf="none",
        dkim=best.result,
        dmarc="none",
        summary=(
            "Aucun résultat d'authentification de confiance ; vérification locale : "
            f"{_dkim_label(best, from_domain)}"
        ),
    )


def _verify_signatures(raw: bytes, dnsfunc: DnsFunc | None) -> list[_DkimCheck]:
    try:
        verifier = dkim.DKIM(raw, logger=logger, timeout=_DNS_TIMEOUT)
        count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    except Exception:
        logger.info("DKIM: unparsable message", exc_info=True)
        return [_DkimCheck("permerror", None)] if b"dkim-signature" in raw[:65536].lower() else []
    return [_verify_one(verifier, idx, dnsfunc) for idx in range(min(count, _MAX_SIGNATURES))]


def _verify_one(verifier: dkim.DKIM, idx: int, dnsfunc: DnsFunc | None) -> _DkimCheck:
    lookup = _KeyLookup(dnsfunc)
    try:
        valid = verifier.verify(idx=idx, dnsfunc=lookup)
    except dkim.ValidationError:
        # Raised after the key was fetched only by a body hash mismatch: the content changed.
        result = "fail" if lookup.usable_key else "permerror"
        return _DkimCheck(result, _signing_domain(verifier))
    except Exception:
        logger.info("DKIM: signature %d not checkable", idx, exc_info=True)
        return _DkimCheck("permerror", _signing_domain(verifier))
    if valid:
        return _DkimCheck("pass", _signing_domain(verifier))
    # False also means "no usable key": that is the sender's DNS, not a forged message.
    return _DkimCheck("fail" if lookup.usable_key else lookup.error, _signing_domain(verifier))


class _KeyLookup:
    """The dnsfunc handed to dkimpy; remembers whether a usable key came back."""

    def __init__(self, dnsfunc: DnsFunc | None) -> None:
        self._dnsfunc = dnsfunc
        self.usable_key = False
        self.error = "permerror"

    def __call__(self, name: bytes, timeout: float = _DNS_TIMEOUT) -> bytes | None:
        try:
            if self._dnsfunc is None:
                record = dkim.dnsplug.get_txt(name, timeout=timeout)
            else:
                record = self._dnsfunc(name.decode("ascii", "replace").rstrip("."))
        except Exception:
            logger.info("DKIM: key lookup failed for %r", name, exc_info=True)
            self.error = "temperror"
            return None
        if isinstance(record, str):
            record = record.encode("utf-8", "replace")
        if record:
            try:
                dkim.evaluate_pk(name, record)
                self.usable_key = True
            except Exception:
                self.usable_key = False
        return record or None


def _signing_domain(verifier: dkim.DKIM) -> str | None:
    domain = getattr(verifier, "domain", None)
    if isinstance(domain, bytes):
        return _normalise_domain(domain.decode("ascii", "replace"))
    return None


# --------------------------------------------------------------------------------------
# Domains and labels
# --------------------------------------------------------------------------------------


def _best_dkim(checks: list[_DkimCheck], from_domain: str | None) -> _DkimCheck:
    def rank(check: _DkimCheck) -> int:
        if check.result == "pass":
            return 0 if _aligned(check.domain, from_domain) else 1
        return 2 if check.result == "fail" else 3

    return min(checks, key=rank, default=_DkimCheck("none", None))


def _aligned(signing_domain: str | None, from_domain: str | None) -> bool:
    """Relaxed alignment without the public suffix list, so it never over-trusts.

    The signer may be the From domain or a parent of it (a parent controls its
    subdomains' DNS anyway); a sibling or a child of the From domain does not count.
    """
    if not signing_domain or not from_domain or "." not in signing_domain:
        return False
    return from_domain == signing_domain or from_domain.endswith("." + signing_domain)


def _dkim_label(check: _DkimCheck, from_domain: str | None) -> str:
    if check.domain is None:
        return f"DKIM : {check.result}"
    if check.result == "pass" and not _aligned(check.domain, from_domain):
        return f"DKIM : pass ({check.domain}, domaine différent de l'expéditeur)"
    return f"DKIM : {check.result} ({check.domain})"


def _domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return _normalise_domain(address) if address and "." in address else None
    return _normalise_domain(address.rpartition("@")[2])


def _normalise_domain(domain: str) -> str | None:
    domain = domain.strip().strip("<>").rstrip(".").lower()
    if not domain:
        return None
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return domain
    return domain
