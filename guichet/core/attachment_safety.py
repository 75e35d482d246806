"""Is an inbound attachment safe to hand to an agent?

``attachment_verdict`` judges the bytes, never the sender's word: the type comes from the
content (libmagic, else ``filetypes``), the name only adds reasons to block.  It blocks
executables, scripts, disk images, macro-enabled Office files and archives holding any of
them, and archives it cannot open (encrypted, RAR/7z, too deep, too big once unpacked),
since what cannot be inspected cannot be declared clean.  With a ``Scanner`` (clamd) it
also looks for known viruses; when the scan cannot be done the attachment stays
quarantined, never clean.  Pure: no Django, no ORM.
"""

from __future__ import annotations

import bz2
import io
import logging
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Literal, Protocol

from guichet.core.filetypes import detect_content_type

try:
    import magic as _magic
except ImportError:  # libmagic1 missing: fall back to our own signatures
    _magic = None  # type: ignore[assignment]

try:
    import olefile as _olefile
except ImportError:  # optional: the VBA storage name is then searched as bytes
    _olefile = None  # type: ignore[assignment]

__all__ = [
    "DANGEROUS_EXTENSIONS",
    "AttachmentVerdict",
    "Scanner",
    "ScannerUnavailable",
    "attachment_limits_check",
    "attachment_verdict",
    "detect_type",
]

logger = logging.getLogger(__name__)

Status = Literal["clean", "quarantined", "infected"]

#: Names Windows or macOS would run, install or mount on a double click.
DANGEROUS_EXTENSIONS = frozenset(
    """
    .exe .com .scr .bat .cmd .ps1 .psm1 .vbs .vbe .js .jse .wsf .wsh .ws .wsc .hta .jar .msi
    .msp .mst .lnk .pif .scf .sh .command .reg .dll .cpl .ocx .sys .inf .chm .iso .img .vhd
    .vhdx .appx .msix .appref-ms .application .gadget .xll .apk .dmg .pkg
    .docm .dotm .xlsm .xltm .xlam .pptm .potm .ppsm .ppam .sldm
    """.split()
)
_MACRO_EXTENSIONS = frozenset(".docm .dotm .xlsm .xltm .xlam .pptm .potm .ppsm .ppam .sldm".split())
_DANGEROUS_TYPES = frozenset(
    """
    application/x-dosexec application/x-msdownload application/x-ms-dos-executable
    application/vnd.microsoft.portable-executable application/x-executable
    application/x-pie-executable application/x-sharedlib application/x-elf
    application/x-mach-binary application/x-mach-o-executable application/x-msi
    application/x-ms-installer application/x-ms-shortcut application/java-archive
    application/x-java-archive application/java-vm application/x-java-applet application/hta
    text/x-shellscript application/x-shellscript application/x-sh text/x-msdos-batch
    application/x-bat application/x-msdos-program application/x-iso9660-image
    application/vnd.ms-word.document.macroenabled.12 application/vnd.ms-excel.sheet.macroenabled.12
    application/vnd.ms-powerpoint.presentation.macroenabled.12
    """.split()
)

MAX_ARCHIVE_DEPTH = 3  # levels of archives nested inside an archive that are still opened
MAX_UNPACKED_BYTES = 100 * 1024 * 1024  # decompressed bytes read, all levels together
MAX_ARCHIVE_MEMBERS = 5_000
_HEAD = 64 * 1024  # enough for every signature below (ISO 9660 sits at 32 KiB)

_CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MSI_CLSID = "000C1084-0000-0000-C000-000000000046"
_VBA_UTF16 = "_VBA_PROJECT".encode("utf-16-le")
_ENCRYPTED_PACKAGE_UTF16 = "EncryptedPackage".encode("utf-16-le")
_MACRO_REASON = "document Office contenant des macros (VBA)"
_SCAN_IMPOSSIBLE = (
    "analyse antivirus impossible ({}) : pièce bloquée par précaution jusqu'à une nouvelle analyse"
)


class ScannerUnavailable(Exception):
    """The virus scan could not be done (scanner down, timeout, refused the stream)."""


class Scanner(Protocol):
    def scan(self, content: bytes) -> str | None:
        """Return the name of the virus found, None when clean; raise ScannerUnavailable."""
        ...


@dataclass(frozen=True)
class AttachmentVerdict:
    status: Status
    #: MIME type read from the content.
    detected_type: str
    #: Why the attachment is blocked, in French for agents ("" when clean); fits scan_result.
    reason: str = ""


def attachment_verdict(
    *,
    content: bytes,
    filename: str,
    declared_type: str,
    scanner: Scanner | None = None,
) -> AttachmentVerdict:
    detected = detect_type(content)
    reason = _static_reason(content, filename, declared_type, detected)
    if scanner is not None:
        try:
            virus = scanner.scan(content)
        except Exception as exc:  # any scanner fault fails closed
            logger.warning("Virus scan impossible for %r: %s", filename[:100], exc)
            why = reason or _SCAN_IMPOSSIBLE.format(_short(str(exc) or type(exc).__name__, 80))
            return AttachmentVerdict("quarantined", detected, why[:300])
        if virus:
            return AttachmentVerdict("infected", detected, f"virus détecté : {virus}"[:300])
    if reason:
        return AttachmentVerdict("quarantined", detected, reason[:300])
    return AttachmentVerdict("clean", detected)


def attachment_limits_check(
    *, sizes: list[int], max_count: int, max_total: int, max_each: int
) -> str | None:
    """Why a message's attachments exceed the limits, in French; None when within them."""
    problems: list[str] = []
    if len(sizes) > max_count:
        problems.append(f"trop de pièces jointes : {len(sizes)} (maximum {max_count})")
    if sizes and max(sizes) > max_each:
        problems.append(
            f"pièce jointe trop volumineuse : {_format_size(max(sizes))}"
            f" (maximum {_format_size(max_each)} par pièce)"
        )
    if sum(sizes) > max_total:
        problems.append(
            f"taille totale des pièces jointes trop élevée : {_format_size(sum(sizes))}"
            f" (maximum {_format_size(max_total)})"
        )
    return " ; ".join(problems) or None


def _format_size(size: int) -> str:
    for unit, scale in (("Go", 1024**3), ("Mo", 1024**2), ("Ko", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".rstrip("0").rstrip(".").replace(".", ",") + f" {unit}"
    return f"{size} octets"


def detect_type(content: bytes) -> str:
    """MIME type from the first bytes, through libmagic when it is there."""
    if _magic is not None:
        try:
            detected = _magic.from_buffer(content[:8192], mime=True)
        except Exception:
            logger.warning("libmagic failed; using built-in signatures", exc_info=True)
        else:
            if detected:
                return str(detected).lower()
    return detect_content_type(content)


# --------------------------------------------------------------------------------------
# Static inspection
# --------------------------------------------------------------------------------------


class _Budget:
    """Bounds the work over all nesting levels, against zip bombs."""

    def __init__(self) -> None:
        self.unpacked = 0
        self.members = 0

    @property
    def remaining(self) -> int:
        return MAX_UNPACKED_BYTES - self.unpacked


class _Blocked(Exception):
    """Stops the inspection at the first reason to block."""


def _static_reason(content: bytes, filename: str, declared_type: str, detected: str) -> str | None:
    try:
        reason = _reason(content, filename, depth=0, budget=_Budget())
    except _Blocked as blocked:
        return str(blocked)
    except Exception:
        # A parser bug on hostile bytes must not let the file through.
        logger.exception("Attachment inspection failed for %r", filename[:100])
        return "contenu impossible à inspecter (erreur d'analyse)"
    if reason:
        return reason
    if detected in _DANGEROUS_TYPES:
        return f"type dangereux détecté : {detected}"
    declared = declared_type.split(";")[0].strip().lower()
    if declared in _DANGEROUS_TYPES:
        return f"type dangereux déclaré : {declared}"
    return None


def _reason(data: bytes, name: str, *, depth: int, budget: _Budget) -> str | None:
    """Why ``data`` (named ``name``) must be blocked; None when nothing was found."""
    extension = _dangerous_extension(name)
    if extension in _MACRO_EXTENSIONS:
        return f"document Office avec macros ({extension})"
    if extension:
        return f"extension dangereuse ({extension})"
    simple = _signature_reason(data)
    if simple:
        return simple
    if data.startswith(_CFB):
        return _ole_reason(data)
    opener = _container_opener(data)
    if opener is None:
        return None
    if depth > MAX_ARCHIVE_DEPTH:
        return f"archives imbriquées sur plus de {MAX_ARCHIVE_DEPTH} niveaux"
    return opener(data, name, depth, budget)


def _dangerous_extension(name: str) -> str | None:
    # Windows drops trailing dots and spaces, and some tools stop at a NUL.
    for candidate in {name, name.split("\x00")[0]}:
        base = candidate.replace("\\", "/").rsplit("/", 1)[-1].rstrip(". \x00").lower()
        if "." in base:
            extension = "." + base.rsplit(".", 1)[1]
            if extension in DANGEROUS_EXTENSIONS:
                return extension
    return None


def _signature_reason(data: bytes) -> str | None:
    head = data[:16]
    if head.startswith(b"MZ") and _is_dos_executable(data):
        return "fichier exécutable Windows (MZ/PE)"
    if head.startswith(b"\x7fELF"):
        return "fichier exécutable Linux (ELF)"
    if head[:4] in {
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
    }:
        return "fichier exécutable macOS (Mach-O)"
    if head.startswith(b"\xca\xfe\xba\xbe"):
        return "fichier exécutable (Mach-O universel ou classe Java)"
    if head.startswith(b"L\x00\x00\x00\x01\x14\x02\x00"):
        return "raccourci Windows (.lnk)"
    if head.startswith((b"#!", b"\xef\xbb\xbf#!")):
        return "script exécutable (#!)"
    if _is_registry_file(data):
        return "fichier de registre Windows"
    if any(data[offset : offset + 5] == b"CD001" for offset in (0x8001, 0x8801, 0x9001)):
        return "image disque (ISO 9660)"
    for magic_bytes, label in _UNINSPECTABLE:
        if head.startswith(magic_bytes):
            return f"archive {label} : contenu impossible à inspecter"
    return None


_UNINSPECTABLE: tuple[tuple[bytes, str], ...] = (
    (b"Rar!\x1a\x07", "RAR"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"MSCF\x00\x00\x00\x00", "CAB"),
    (b"**ACE**", "ACE"),
    (b"\x60\xea", "ARJ"),
)


def _is_dos_executable(data: bytes) -> bool:
    if len(data) < 64:
        return False
    offset = struct.unpack_from("<I", data, 0x3C)[0]
    if data[offset : offset + 4] == b"PE\x00\x00":
        return True
    # A DOS header always holds NUL bytes; a text that merely starts with "MZ" does not.
    return b"\x00" in data[2:64]


def _is_registry_file(data: bytes) -> bool:
    head = data[:64]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        head = data[:128].decode("utf-16", "ignore").encode("utf-8", "ignore")
    head = head.removeprefix(b"\xef\xbb\xbf")
    return head.startswith((b"Windows Registry Editor", b"REGEDIT4"))


def _ole_reason(data: bytes) -> str | None:
    """Legacy Office (.doc, .xls), MSI and other OLE2 compound files."""
    if _olefile is not None:
        try:
            with _olefile.OleFileIO(data) as ole:
                if ole.root is not None and str(ole.root.clsid).upper() == _MSI_CLSID:
                    return "installateur Windows (MSI)"
                paths = [
                    [part.lower() for part in entry]
                    for entry in ole.listdir(streams=True, storages=True)
                ]
        except Exception:
            logger.info("olefile could not parse an OLE file; byte search used", exc_info=True)
        else:
            if any(part == "vba" or part.startswith("_vba_project") for p in paths for part in p):
                return _MACRO_REASON
            if ["encryptedpackage"] in paths:
                return "document Office chiffré : contenu impossible à inspecter"
            return None
    if _VBA_UTF16 in data:
        return _MACRO_REASON
    if _ENCRYPTED_PACKAGE_UTF16 in data:
        return "document Office chiffré : contenu impossible à inspecter"
    return None


# --------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------

_Opener = Callable[[bytes, str, int, _Budget], "str | None"]


def _container_opener(data: bytes) -> _Opener | None:
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return _zip_reason
    if data.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return _compressed_reason
    if data[257:262] == b"ustar":
        return _tar_reason
    return None


def _zip_reason(data: bytes, name: str, depth: int, budget: _Budget) -> str | None:
    # The declared count is checked before zipfile parses a huge central directory, the real
    # one after, in case the declared count lied.
    declared = _zip_declared_count(data)
    _count_members(budget, declared)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            _count_members(budget, max(0, len(infos) - declared))
            for info in infos:
                reason = _zip_member_reason(archive, info, depth, budget)
                if reason:
                    return reason
    except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError, ValueError, RuntimeError):
        return "archive ZIP illisible : contenu impossible à inspecter"
    return None


def _zip_member_reason(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, depth: int, budget: _Budget
) -> str | None:
    member = info.filename
    base = member.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if base == "vbaproject.bin":
        return _MACRO_REASON
    if member.lower().startswith("xl/macrosheets/"):
        return "classeur Excel contenant des macros XLM"
    if info.flag_bits & 0x1:
        return "archive chiffrée : contenu impossible à inspecter"
    if info.is_dir():
        return _member_prefix(member, _dangerous_extension_reason(member))
    with archive.open(info) as stream:
        content = _read_member(stream, budget)
    return _member_prefix(member, _reason(content, member, depth=depth + 1, budget=budget))


def _zip_declared_count(data: bytes) -> int:
    """Entry count in the end-of-central-directory record (0 when absent or in ZIP64)."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or end + 22 > len(data):
        return 0
    count = int(struct.unpack_from("<H", data, end + 10)[0])
    return 0 if count == 0xFFFF else count


def _tar_reason(data: bytes, name: str, depth: int, budget: _Budget) -> str | None:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for info in archive:
                _count_members(budget, 1)
                if not info.isfile():
                    reason = _dangerous_extension_reason(info.name)
                else:
                    stream = archive.extractfile(info)
                    content = _read_member(stream, budget) if stream is not None else b""
                    reason = _reason(content, info.name, depth=depth + 1, budget=budget)
                if reason:
                    return _member_prefix(info.name, reason)
    except (tarfile.TarError, OSError, ValueError, EOFError):
        return "archive TAR illisible : contenu impossible à inspecter"
    return None


def _compressed_reason(data: bytes, name: str, depth: int, budget: _Budget) -> str | None:
    """A single compressed stream (.gz, .bz2, .xz), often a .tar inside."""
    try:
        inner = _decompress(data, budget.remaining + 1)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return "fichier compressé illisible : contenu impossible à inspecter"
    budget.unpacked += len(inner)
    if budget.remaining < 0:
        raise _Blocked(_TOO_BIG)
    inner_name = _strip_compression_suffix(name)
    return _reason(inner, inner_name, depth=depth + 1, budget=budget)


def _decompress(data: bytes, limit: int) -> bytes:
    if data.startswith(b"\x1f\x8b"):
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(data, limit)
    if data.startswith(b"BZh"):
        return bz2.BZ2Decompressor().decompress(data, max_length=limit)
    return lzma.LZMADecompressor().decompress(data, max_length=limit)


def _strip_compression_suffix(name: str) -> str:
    lowered = name.lower()
    for suffix, replacement in ((".tgz", ".tar"), (".tbz2", ".tar"), (".txz", ".tar")):
        if lowered.endswith(suffix):
            return name[: -len(suffix)] + replacement
    for suffix in (".gz", ".bz2", ".xz"):
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return ""


_TOO_BIG = "archive trop volumineuse une fois décompressée (bombe de décompression ?)"


def _read_member(stream: IO[bytes], budget: _Budget) -> bytes:
    """Read a member's head; the whole member only when it is itself a container."""
    head = stream.read(min(_HEAD, budget.remaining + 1))
    budget.unpacked += len(head)
    if budget.remaining < 0:
        raise _Blocked(_TOO_BIG)
    if len(head) < _HEAD or not _needs_whole(head):
        return bytes(head)
    rest = stream.read(budget.remaining + 1)
    budget.unpacked += len(rest)
    if budget.remaining < 0:
        raise _Blocked(_TOO_BIG)
    return bytes(head) + bytes(rest)


def _needs_whole(head: bytes) -> bool:
    return head.startswith(_CFB) or _container_opener(head) is not None


def _count_members(budget: _Budget, count: int) -> None:
    budget.members += count
    if budget.members > MAX_ARCHIVE_MEMBERS:
        raise _Blocked(
            f"archive de plus de {MAX_ARCHIVE_MEMBERS} fichiers : contenu impossible à inspecter"
        )


def _dangerous_extension_reason(name: str) -> str | None:
    extension = _dangerous_extension(name)
    return f"extension dangereuse ({extension})" if extension else None


def _member_prefix(member: str, reason: str | None) -> str | None:
    if reason is None:
        return None
    return f"« {_short(member, 80)} » dans l'archive : {reason}"


def _short(text: str, limit: int) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"
