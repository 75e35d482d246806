from __future__ import annotations

import pytest

from guichet.core.filetypes import detect_content_type


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.7 ...", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"MZ\x90\x00 executable pretending to be a pdf", "application/x-msdownload"),
        (b"Bonjour, voici ma demande \xc3\xa9", "text/plain"),
        (b"\x00\x01\x02\x03binary", "application/octet-stream"),
        (b"", "application/x-empty"),
    ],
)
def test_type_comes_from_content_not_name(data: bytes, expected: str) -> None:
    assert detect_content_type(data) == expected
