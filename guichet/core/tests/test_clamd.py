"""ClamdScanner against a real clamd started here, on a signature database made here.

clamd (Debian package ``clamav-daemon``) runs in the foreground on a temporary config whose
database holds one signature: the EICAR test file's MD5, so no download is ever needed.
Without clamd these tests fail on purpose: a silent skip would hide that CI scans nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from guichet.core.attachment_safety import attachment_verdict
from guichet.core.clamd import ClamdScanner, ScannerUnavailable

# Built from pieces so that no file of the repository is itself the EICAR test file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-" + b"ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "Guichet-Test-EICAR"
STREAM_MAX = 1024 * 1024


@dataclass(frozen=True)
class Clamd:
    socket_path: str
    port: int


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def clamd() -> Iterator[Clamd]:
    binary = shutil.which("clamd") or shutil.which("clamd", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        pytest.fail(
            "clamd introuvable : installer le paquet Debian clamav-daemon (make system-deps)"
        )
    assert len(EICAR) == 68
    # A short folder: a Unix socket path must stay under 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="clamd-"))
    (folder / "db").mkdir()
    (folder / "db" / "guichet-test.hdb").write_text(
        f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:{SIGNATURE}\n"  # noqa: S324 - clamd's format
    )
    port = _free_port()
    config = folder / "clamd.conf"
    config.write_text(
        "Foreground yes\n"
        f"LocalSocket {folder}/clamd.sock\n"
        f"TCPSocket {port}\nTCPAddr 127.0.0.1\n"
        f"DatabaseDirectory {folder}/db\n"
        f"TemporaryDirectory {folder}\n"
        f"LogFile {folder}/clamd.log\n"
        f"StreamMaxLength {STREAM_MAX}\n"
    )
    log = (folder / "stdout.log").open("wb")
    process = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    started = Clamd(socket_path=f"{folder}/clamd.sock", port=port)
    try:
        _wait_until_ready(process, started, folder)
        yield started
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_ready(process: subprocess.Popen[bytes], started: Clamd, folder: Path) -> None:
    deadline = time.monotonic() + 60
    scanner = ClamdScanner(host="127.0.0.1", port=started.port, timeout=2)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if scanner.ping():
            return
        time.sleep(0.1)
    logs = "".join(
        path.read_text(errors="replace")[-2000:]
        for path in (folder / "stdout.log", folder / "clamd.log")
        if path.exists()
    )
    pytest.fail(f"clamd n'a pas démarré (code {process.poll()}) :\n{logs}")


# --------------------------------------------------------------------------------------
# Real clamd
# --------------------------------------------------------------------------------------


def test_eicar_is_found_over_the_unix_socket(clamd: Clamd) -> None:
    scanner = ClamdScanner(socket_path=clamd.socket_path)

    found = scanner.scan(EICAR)

    assert found is not None
    assert found.startswith(SIGNATURE)


def test_eicar_is_found_over_tcp(clamd: Clamd) -> None:
    found = ClamdScanner(host="127.0.0.1", port=clamd.port).scan(EICAR)

    assert found is not None
    assert found.startswith(SIGNATURE)


def test_clean_content_in_many_chunks_is_ok(clamd: Clamd) -> None:
    content = b"%PDF-1.4\n" + bytes(range(256)) * 3000  # about 770 KB: 12 chunks

    assert ClamdScanner(socket_path=clamd.socket_path).scan(content) is None
    assert ClamdScanner(socket_path=clamd.socket_path).scan(b"") is None


def test_stream_over_clamd_limit_is_unavailable_not_clean(clamd: Clamd) -> None:
    scanner = ClamdScanner(socket_path=clamd.socket_path)

    with pytest.raises(ScannerUnavailable, match="size limit"):
        scanner.scan(b"\x00" * (2 * STREAM_MAX))


def test_ping(clamd: Clamd) -> None:
    assert ClamdScanner(socket_path=clamd.socket_path).ping() is True


def test_attachment_with_eicar_is_infected(clamd: Clamd) -> None:
    verdict = attachment_verdict(
        content=EICAR,
        filename="lettre.txt",
        declared_type="text/plain",
        scanner=ClamdScanner(socket_path=clamd.socket_path),
    )

    assert verdict.status == "infected"
    assert verdict.reason.startswith(f"virus détecté : {SIGNATURE}")


# --------------------------------------------------------------------------------------
# clamd missing or misbehaving
# --------------------------------------------------------------------------------------


def test_closed_port_raises_unavailable() -> None:
    scanner = ClamdScanner(host="127.0.0.1", port=_free_port(), timeout=2)

    with pytest.raises(ScannerUnavailable, match="clamd injoignable"):
        scanner.scan(b"bonjour")
    assert scanner.ping() is False


def test_missing_unix_socket_raises_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ScannerUnavailable):
        ClamdScanner(socket_path=str(tmp_path / "absent.sock")).scan(b"bonjour")


def test_attachment_stays_quarantined_when_clamd_is_down() -> None:
    verdict = attachment_verdict(
        content=b"%PDF-1.4\n",
        filename="lettre.pdf",
        declared_type="application/pdf",
        scanner=ClamdScanner(host="127.0.0.1", port=_free_port(), timeout=2),
    )

    assert verdict.status == "quarantined"
    assert verdict.reason.startswith("analyse antivirus impossible")


class _FakeClamd:
    """A loopback server that reads one INSTREAM, then answers ``reply`` (or stays silent)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.server.accept()
        with connection:
            connection.settimeout(5)
            while not self.received.endswith(b"\x00\x00\x00\x00"):
                chunk = connection.recv(65536)
                if not chunk:
                    return
                self.received += chunk
            if self.reply is None:
                time.sleep(2)
                return
            connection.sendall(self.reply)

    def close(self) -> None:
        self.thread.join(timeout=5)
        self.server.close()


def test_instream_framing_is_what_clamd_expects() -> None:
    fake = _FakeClamd(b"stream: OK\x00")

    result = ClamdScanner(host="127.0.0.1", port=fake.port).scan(b"abc")
    fake.close()

    assert result is None
    assert fake.received == b"zINSTREAM\x00" + b"\x00\x00\x00\x03abc" + b"\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"garbage\x00", "réponse inattendue"),
        (b"stream: lstat() failed. ERROR\x00", "refusé"),
        (b"", "sans répondre"),
    ],
)
def test_unexpected_replies_raise_unavailable(reply: bytes, message: str) -> None:
    fake = _FakeClamd(reply)

    with pytest.raises(ScannerUnavailable, match=message):
        ClamdScanner(host="127.0.0.1", port=fake.port, timeout=5).scan(b"abc")
    fake.close()


def test_silent_clamd_times_out_as_unavailable() -> None:
    fake = _FakeClamd(None)

    started = time.monotonic()
    with pytest.raises(ScannerUnavailable):
        ClamdScanner(host="127.0.0.1", port=fake.port, timeout=0.5).scan(b"abc")
    elapsed = time.monotonic() - started
    fake.close()

    assert elapsed < 1.5


def test_exactly_one_address_is_required() -> None:
    with pytest.raises(ValueError):
        ClamdScanner()
    with pytest.raises(ValueError):
        ClamdScanner(socket_path="/run/clamav/clamd.ctl", host="localhost")
