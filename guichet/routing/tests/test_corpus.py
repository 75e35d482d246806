"""The shipped routing corpus stays well-formed, and the dev set never leaks into the seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECKER = Path(__file__).resolve().parents[1] / "data" / "check_corpus.py"


def test_corpus_passes_its_checks() -> None:
    result = subprocess.run([sys.executable, str(CHECKER)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
