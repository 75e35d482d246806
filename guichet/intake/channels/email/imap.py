"""IMAP intake: fetch, commit, and only then move each message out of the watched folder.

A message leaves the inbox only after `email_receive` committed it, so a crash or a database
outage at any point leaves it in place for the next pass; `email_receive` is idempotent, so a
message stored but not yet moved is simply moved on the next pass.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import io
import itertools
import logging
import re
import select
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, close_old_connections

from guichet.intake.channels.email.receive import email_receive

logger = logging.getLogger(__name__)

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_LIST_DELIMITER = re.compile(rb'^\([^)]*\) (?:"((?:\\.|[^"\\])*)"|NIL)', re.I)
_EXISTS = re.compile(rb"^\* \d+ EXISTS", re.I)
_IDLE_TAGS = itertools.count(1)
# Wake up this often while waiting, so that a stop request is honoured promptly.
_STOP_CHECK_SECONDS = 0.25


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    user: str
    password: str
    ssl: bool
    starttls: bool
    folder: str = "INBOX"
    processed_folder: str = "Guichet/Traité"
    poll_seconds: float = 60.0
    # RFC 2177: servers may drop an IDLE after 30 minutes, so it is re-issued well before.
    idle_seconds: float = 300.0
    timeout: float = 60.0
    backoff_max: float = 60.0


def imap_config_from_settings() -> ImapConfig | None:
    """The mailbox to watch, or None when IMAP intake is not configured."""
    host = str(getattr(settings, "GUICHET_IMAP_HOST", "") or "")
    if not host:
        return None
    use_ssl = bool(getattr(settings, "GUICHET_IMAP_SSL", True))
    starttls = bool(getattr(settings, "GUICHET_IMAP_STARTTLS", False))
    if use_ssl and starttls:
        raise ImproperlyConfigured("GUICHET_IMAP_SSL and GUICHET_IMAP_STARTTLS are exclusive.")
    if not (use_ssl or starttls) and host not in _LOOPBACK:
        raise ImproperlyConfigured("IMAP without TLS would send the password in clear: set GUICHET_IMAP_SSL or GUICHET_IMAP_STARTTLS.")
    user = str(getattr(settings, "GUICHET_IMAP_USER", ""))
    if not user:
        raise ImproperlyConfigured("GUICHET_IMAP_USER is required when GUICHET_IMAP_HOST is set.")
    return ImapConfig(
        host=host,
        port=int(getattr(settings, "GUICHET_IMAP_PORT", 0) or (993 if use_ssl else 143)),
        user=user,
        password=str(getattr(settings, "GUICHET_IMAP_PASSWORD", "")),
        ssl=use_ssl,
        starttls=starttls,
        folder=str(getattr(settings, "GUICHET_IMAP_FOLDER", "INBOX")),
        processed_folder=str(getattr(settings, "GUICHET_IMAP_PROCESSED_FOLDER", "Guichet/Traité")),
        poll_seconds=float(getattr(settings, "GUICHET_IMAP_POLL_SECONDS", 60)),
        idle_seconds=float(getattr(settings, "GUICHET_IMAP_IDLE_SECONDS", 300)),
    )


# --- Folder names: RFC 3501 §5.1.3 "modified UTF-7" -------------------------------------------


def imap_utf7_encode(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def imap_utf7_decode(name: str) -> str:
    def shifted(match: re.Match[str]) -> str:
        chunk = match.group(1)
        if not chunk:
            return "&"
        padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
        return base64.b64decode(padded).decode("utf-16-be")

    return re.sub(r"&([A-Za-z0-9+,]*)-", shifted, name)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- Connection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Session:
    conn: imaplib.IMAP4
    capabilities: frozenset[str]
    folder: str
    processed: str


def imap_connect(config: ImapConfig) -> imaplib.IMAP4:
    conn: imaplib.IMAP4
    if config.ssl:
        conn = imaplib.IMAP4_SSL(config.host, config.port, ssl_context=ssl.create_default_context(), timeout=config.timeout)
    else:
        conn = imaplib.IMAP4(config.host, config.port, timeout=config.timeout)
        if config.starttls:
            conn.starttls(ssl_context=ssl.create_default_context())
    conn.login(config.user, config.password)
    return conn


def _check(conn: imaplib.IMAP4, typ: str, data: Sequence[object], what: str) -> None:
    if typ != "OK":
        raise conn.error(f"{what} refused: {data!r}")


def _capabilities(conn: imaplib.IMAP4) -> frozenset[str]:
    # The pre-login greeting lists fewer capabilities (dovecot adds MOVE after login): ask again.
    typ, data = conn.capability()
    _check(conn, typ, data, "CAPABILITY")
    line = data[-1].decode("ascii", "replace") if isinstance(data[-1], bytes) else ""
    return frozenset(line.upper().split())


def _server_name(conn: imaplib.IMAP4, name: str) -> str:
    """Our folder names use "/" as separator; the server may use another (dovecot maildir: ".")."""
    typ, data = conn.list('""', '""')
    _check(conn, typ, data, "LIST")
    match = _LIST_DELIMITER.match(data[0]) if data and isinstance(data[0], bytes) else None
    delimiter = match.group(1).decode("ascii").replace("\\", "") if match and match.group(1) else "/"
    return imap_utf7_encode(name.replace("/", delimiter))


def _ensure_folder(conn: imaplib.IMAP4, name: str) -> None:
    typ, data = conn.list('""', _quote(name))
    if typ == "OK" and any(data):
        return
    typ, data = conn.create(_quote(name))
    _check(conn, typ, data, f"CREATE {name}")
    # Subscribed, so that the agents' mail clients show the folder.
    conn.subscribe(_quote(name))


@contextlib.contextmanager
def _session(config: ImapConfig) -> Iterator[_Session]:
    conn = imap_connect(config)
    try:
        processed = _server_name(conn, config.processed_folder)
        _ensure_folder(conn, processed)
        yield _Session(conn, _capabilities(conn), _server_name(conn, config.folder), processed)
    finally:
        with contextlib.suppress(Exception):
            conn.logout()


# --- One pass over the folder -------------------------------------------------------------------


@dataclass
class _PassResult:
    moved: int = 0
    left: int = 0


def _uids(session: _Session) -> list[str]:
    conn = session.conn
    typ, data = conn.select(_quote(session.folder))
    _check(conn, typ, data, f"SELECT {session.folder}")
    # UNDELETED: a message flagged by a person, or copied by us but not yet expunged, stays put.
    typ, data = conn.uid("SEARCH", "UNDELETED")
    _check(conn, typ, data, "UID SEARCH")
    return [uid.decode("ascii") for uid in b" ".join(d for d in data if isinstance(d, bytes)).split()]


def _fetch(conn: imaplib.IMAP4, uid: str) -> bytes | None:
    # BODY.PEEK leaves \Seen alone: a message we fail to store looks untouched to a human.
    typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
    _check(conn, typ, data, f"UID FETCH {uid}")
    for item in data:
        if isinstance(item, tuple) and b"BODY[]" in item[0].upper():
            return bytes(item[1])
    return None  # expunged meanwhile by someone else


def _move(session: _Session, uid: str) -> None:
    conn, target = session.conn, _quote(session.processed)
    if "MOVE" in session.capabilities:
        typ, data = conn.uid("MOVE", uid, target)
        _check(conn, typ, data, f"UID MOVE {uid}")
        return
    typ, data = conn.uid("COPY", uid, target)
    _check(conn, typ, data, f"UID COPY {uid}")
    typ, data = conn.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
    _check(conn, typ, data, f"UID STORE {uid}")
    # Plain EXPUNGE would also remove messages someone else flagged \Deleted; UIDPLUS avoids it.
    typ, data = conn.uid("EXPUNGE", uid) if "UIDPLUS" in session.capabilities else conn.expunge()
    _check(conn, typ, data, "EXPUNGE")


def _store(raw: bytes, *, user: str, uid: str) -> bool | None:
    """True when committed; False to skip this message; None when the database is down."""
    try:
        email_receive(raw=raw, envelope={"protocol": "imap", "mailbox": user, "uid": int(uid), "mail_from": None})
    except DatabaseError:
        logger.warning("IMAP: database unavailable, message %s stays in the inbox", uid, exc_info=True)
        return None
    except Exception:
        logger.exception("IMAP: could not store message %s; it stays in the inbox", uid)
        return False
    return True


def _poll(session: _Session, config: ImapConfig, stop: threading.Event | None = None) -> _PassResult:
    result = _PassResult()
    uids = _uids(session)
    for position, uid in enumerate(uids):
        if stop is not None and stop.is_set():
            break
        raw = _fetch(session.conn, uid)
        if raw is None:
            continue
        stored = _store(raw, user=config.user, uid=uid)
        if stored is None:
            # Without a database the others would fail too: they wait for the next pass.
            result.left += len(uids) - position
            break
        if not stored:
            result.left += 1
            continue
        _move(session, uid)
        result.moved += 1
    return result


def imap_poll_once(*, config: ImapConfig) -> int:
    """Store every message of the watched folder; returns how many were moved out of it."""
    with _session(config) as session:
        return _poll(session, config).moved


# --- IDLE (RFC 2177) on top of imaplib ----------------------------------------------------------


def _buffered(conn: imaplib.IMAP4) -> bool:
    """Whether a line already sits in imaplib's buffer, where select() cannot see it."""
    sock = conn.sock
    previous = sock.gettimeout()
    sock.setblocking(False)
    try:
        reader = conn.file
        return bool(reader.peek(1)) if isinstance(reader, io.BufferedReader) else False
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        sock.settimeout(previous)


def _readable(conn: imaplib.IMAP4, timeout: float) -> bool:
    # A socket timeout would leave imaplib's file object unusable, hence select().
    if _buffered(conn):
        return True
    ready, _, _ = select.select([conn.sock], [], [], timeout)
    return bool(ready)


def _read_line(conn: imaplib.IMAP4) -> bytes:
    line = conn.readline()
    if not line:
        raise conn.abort("connection closed by the server")
    return bytes(line)


def _idle(conn: imaplib.IMAP4, *, timeout: float, stop: threading.Event) -> bool:
    """Wait in IDLE until new mail, the timeout or a stop request; True when mail arrived."""
    tag = f"GUICHET{next(_IDLE_TAGS)}".encode("ascii")
    conn.send(tag + b" IDLE\r\n")
    arrived = False
    while not (line := _read_line(conn)).startswith(b"+"):
        if line.startswith(tag + b" "):
            raise conn.error(f"IDLE refused: {line!r}")
        arrived = arrived or bool(_EXISTS.match(line))
    logger.debug("IMAP: idling for up to %.0f s", timeout)
    deadline = time.monotonic() + timeout
    while not (arrived or stop.is_set()) and (remaining := deadline - time.monotonic()) > 0:
        if _readable(conn, min(remaining, _STOP_CHECK_SECONDS)):
            line = _read_line(conn)
            if line.upper().startswith(b"* BYE"):
                raise conn.abort(f"server said {line!r}")
            arrived = bool(_EXISTS.match(line))
    conn.send(b"DONE\r\n")
    while not (line := _read_line(conn)).startswith(tag + b" "):
        arrived = arrived or bool(_EXISTS.match(line))
    if not line[len(tag) + 1 :].upper().startswith(b"OK"):
        raise conn.error(f"IDLE ended badly: {line!r}")
    return arrived


# --- The long-running loop ----------------------------------------------------------------------


class _Backoff:
    def __init__(self, cap: float) -> None:
        self.cap = max(cap, 0.1)
        self.delay = min(1.0, self.cap)

    def reset(self) -> None:
        self.delay = min(1.0, self.cap)

    def next(self) -> float:
        current, self.delay = self.delay, min(self.delay * 2, self.cap)
        return current


def _serve(session: _Session, config: ImapConfig, stop: threading.Event, backoff: _Backoff) -> None:
    while not stop.is_set():
        # A long-lived process must drop database connections broken by a restart.
        close_old_connections()
        result = _poll(session, config, stop)
        backoff.reset()
        if result.moved:
            logger.info("IMAP: %d message(s) stored and moved to %s", result.moved, config.processed_folder)
        if result.left or "IDLE" not in session.capabilities:
            stop.wait(config.poll_seconds)
        else:
            _idle(session.conn, timeout=config.idle_seconds, stop=stop)


def imap_run(*, config: ImapConfig, stop: threading.Event) -> None:
    """Watch the mailbox until `stop` is set, reconnecting (with capped backoff) after failures."""
    backoff = _Backoff(config.backoff_max)
    while not stop.is_set():
        try:
            with _session(config) as session:
                logger.info("IMAP: connected to %s:%s as %s", config.host, config.port, config.user)
                _serve(session, config, stop, backoff)
        except (OSError, imaplib.IMAP4.error) as exc:
            logger.warning("IMAP: %s:%s unavailable (%s); retrying in %.1f s", config.host, config.port, exc, backoff.delay)
        except Exception:
            logger.exception("IMAP: unexpected failure; retrying in %.1f s", backoff.delay)
        stop.wait(backoff.next())
    logger.info("IMAP: stopped")
