"""A real dovecot IMAP server for tests: temp directory, high port, mail owned by mail:mail.

See /work/shared/TESTING-NOTES.md: dovecot refuses to run mail processes as root, so the
mailbox belongs to the `mail` user; the tests themselves run as root.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "contact@guichet.localhost"
PASSWORD = "secret"

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 8
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={root}/mail/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


def dovecot_available() -> bool:
    return shutil.which("dovecot") is not None and os.geteuid() == 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Dovecot:
    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="guichet-dovecot-"))
        # The login and mail processes run as unprivileged users and must traverse the tree.
        self.root.chmod(0o755)
        (self.root / "mail").mkdir()
        shutil.chown(self.root / "mail", "mail", "mail")
        (self.root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        self.conf = self.root / "dovecot.conf"
        self.conf.write_text(_CONFIG.format(root=self.root, port=port))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 10) -> None:
        # Foreground (-F) so that this process is the master's parent and can reap it.
        self.process = subprocess.Popen(
            ["dovecot", "-F", "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"dovecot did not start; see {self.root}/dovecot.log") from None
                time.sleep(0.02)

    def stop(self, *, timeout: float = 10) -> None:
        """Stop like a crash or restart would: clients lose their connections at once."""
        if self.process is None:
            return
        master = self.process.pid
        # The master waits seconds for its children; terminating them as well is immediate.
        # Children may still be spawning, so keep looking until the master is gone.
        signalled: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in {master, *_children(master)} - signalled:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                signalled.add(pid)
            if self.process.poll() is not None and not any(_alive(pid) for pid in signalled - {master}):
                break
            time.sleep(0.02)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            conn.login(USER, PASSWORD)
            yield conn
        finally:
            try:
                conn.logout()
            except (OSError, imaplib.IMAP4.error):
                pass

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        with self.client() as conn:
            typ, data = conn.append(f'"{folder}"', None, None, raw)
            assert typ == "OK", data

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        with self.client() as conn:
            typ, data = conn.select(f'"{folder}"', readonly=True)
            assert typ == "OK", data
            typ, data = conn.uid("SEARCH", "ALL")
            uids = data[0].split() if data and data[0] else []
            found = []
            for uid in uids:
                typ, fetched = conn.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                found.extend(bytes(item[1]) for item in fetched if isinstance(item, tuple))
            return found

    def folders(self) -> list[bytes]:
        with self.client() as conn:
            typ, data = conn.list()
            return [line for line in data if isinstance(line, bytes)]
