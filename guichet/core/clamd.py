"""A minimal clamd client speaking INSTREAM, the ``Scanner`` that ``attachment_verdict`` uses.

The bytes are streamed to clamd, so clamd needs no access to our files.  Any failure
(clamd down, timeout, stream over clamd's ``StreamMaxLength``, unexpected reply) raises
``ScannerUnavailable``: the caller then keeps the attachment quarantined ("analyse
antivirus impossible"), never clean.
"""

from __future__ import annotations

import re
import socket
import struct

from guichet.core.attachment_safety import ScannerUnavailable

__all__ = ["ClamdScanner", "ScannerUnavailable"]

_CHUNK = 64 * 1024  # well under clamd's default StreamMaxLength (25 MB)
_MAX_REPLY = 4096
_FOUND = re.compile(r"stream: (.+) FOUND")


class ClamdScanner:
    """Talks to clamd over a Unix socket (``socket_path``) or TCP (``host`` and ``port``)."""

    def __init__(
        self,
        socket_path: str | None = None,
        host: str | None = None,
        port: int | None = None,
        timeout: float = 30,
    ) -> None:
        if (socket_path is None) == (host is None):
            raise ValueError("ClamdScanner needs either socket_path or host, not both")
        self.socket_path = socket_path
        self.host = host
        self.port = port if port is not None else 3310
        self.timeout = timeout

    def __repr__(self) -> str:
        where = self.socket_path or f"{self.host}:{self.port}"
        return f"ClamdScanner({where})"

    def scan(self, content: bytes) -> str | None:
        """The name of the virus clamd found in ``content``, or None when it found none."""
        reply = self._command(b"zINSTREAM\x00", content)
        if reply == "stream: OK":
            return None
        found = _FOUND.fullmatch(reply)
        if found:
            return found.group(1)
        raise ScannerUnavailable(f"réponse inattendue de clamd : {reply[:200]!r}")

    def ping(self) -> bool:
        try:
            return self._command(b"zPING\x00", None) == "PONG"
        except ScannerUnavailable:
            return False

    def _command(self, command: bytes, stream: bytes | None) -> str:
        try:
            with self._connect() as sock:
                sock.sendall(command)
                if stream is not None:
                    self._send_stream(sock, stream)
                return _read_reply(sock)
        except OSError as exc:
            raise ScannerUnavailable(f"clamd injoignable ({self!r}) : {exc}") from exc

    def _connect(self) -> socket.socket:
        if self.socket_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except OSError:
                sock.close()
                raise
            return sock
        return socket.create_connection((self.host or "localhost", self.port), timeout=self.timeout)

    def _send_stream(self, sock: socket.socket, content: bytes) -> None:
        view = memoryview(content)
        try:
            for start in range(0, len(view), _CHUNK):
                chunk = view[start : start + _CHUNK]
                sock.sendall(struct.pack(">I", len(chunk)))
                sock.sendall(chunk)
            sock.sendall(struct.pack(">I", 0))
        except OSError as exc:
            # Over StreamMaxLength, clamd answers and closes mid-stream: report its reason.
            try:
                reason = _read_reply(sock)
            except OSError:
                reason = ""
            raise ScannerUnavailable(f"clamd a interrompu l'analyse : {reason or exc}") from exc


def _read_reply(sock: socket.socket) -> str:
    """One NUL-terminated reply (the "z" commands' framing)."""
    data = b""
    while b"\x00" not in data and len(data) < _MAX_REPLY:
        chunk = sock.recv(_MAX_REPLY)
        if not chunk:
            break
        data += chunk
    reply = data.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
    if reply.endswith("ERROR"):
        raise ScannerUnavailable(f"clamd a refusé l'analyse : {reply[:200]}")
    if not reply:
        raise ScannerUnavailable("clamd a fermé la connexion sans répondre")
    return reply
