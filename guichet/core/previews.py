"""Safe previews of citizens' attachments: images as they are, PDFs as a picture of page one.

A PDF is never handed to the agent's browser as a document (it may carry scripts or exploits);
poppler renders its first page to PNG in a separate process with a time limit.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
PREVIEWABLE_TYPES = IMAGE_TYPES | {"application/pdf"}


def preview_png_of_pdf(data: bytes, *, timeout: float = 15.0, dpi: int = 80) -> bytes | None:
    """PNG of the first page, or None if the PDF cannot be rendered (broken, too slow, no poppler)."""
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        logger.warning("pdftoppm (poppler-utils) is not installed: no PDF previews")
        return None
    with tempfile.TemporaryDirectory(prefix="guichet-preview-") as folder:
        source = Path(folder) / "in.pdf"
        source.write_bytes(data)
        try:
            subprocess.run(  # noqa: S603 - fixed executable, arguments we build
                [pdftoppm, "-png", "-f", "1", "-l", "1", "-r", str(dpi), "-singlefile", str(source), str(Path(folder) / "out")],
                check=True, capture_output=True, timeout=timeout,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            logger.info("PDF preview failed: %s", exc)
            return None
        output = Path(folder) / "out.png"
        return output.read_bytes() if output.exists() else None
