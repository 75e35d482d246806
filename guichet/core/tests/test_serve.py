"""`guichet serve` as `make run` starts it: web, SMTP and worker, and Ctrl-C stops all three."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from guichet.conftest import free_port


def _wait_for(url: str, deadline: float) -> int:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback test server
                return int(response.status)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@pytest.mark.django_db(transaction=True)
def test_serve_runs_the_three_parts_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    web_port, smtp_port = free_port(), free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "guichet.settings", "GUICHET_DEBUG": "true", "GUICHET_VAR_DIR": str(tmp_path), "GUICHET_SMTPD_PORT": str(smtp_port)}
    env.pop("DATABASE_URL", None)  # its own SQLite under tmp_path, as on a fresh clone
    subprocess.run([sys.executable, "-m", "guichet.manage", "migrate", "-v0"], env=env, check=True, timeout=120)
    server = subprocess.Popen([sys.executable, "-m", "guichet.manage", "serve", "--port", str(web_port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait_for(f"http://127.0.0.1:{web_port}/", time.monotonic() + 60) == 200
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.sendmail("claire@example.org", ["contact@guichet.localhost"], b"Subject: TER\r\n\r\nMon TER est en retard.\r\n")
        # the in-process worker turns it into a request with its acknowledgement in var/mail
        deadline = time.monotonic() + 30
        while not list((tmp_path / "mail").glob("*.log")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list((tmp_path / "mail").glob("*.log")), "no acknowledgement written"
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "Guichet arrêté." in output
