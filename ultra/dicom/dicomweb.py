"""A small DICOMweb client: QIDO-RS to list a PACS's instances, WADO-RS to fetch each one in its
original transfer syntax (``transfer-syntax=*``; otherwise servers such as Orthanc transcode)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests

logger = logging.getLogger(__name__)

WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
TIMEOUT_S = 60


class DicomWebError(RuntimeError):
    """The DICOMweb server answered with an error or something that is not DICOM."""


@dataclass(frozen=True)
class WadoInstance:
    """One instance on the server, addressed by its three UIDs."""

    study: str
    series: str
    instance: str

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/studies/{self.study}/series/{self.series}/instances/{self.instance}"


def is_dicomweb_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _value(item: dict, tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


def _get_json(session: requests.Session, url: str, params: dict | None = None) -> list[dict]:
    try:
        response = session.get(
            url, params=params, headers={"Accept": "application/dicom+json"}, timeout=TIMEOUT_S
        )
    except requests.RequestException as exc:
        raise DicomWebError(f"QIDO-RS {url} unreachable ({type(exc).__name__})") from None
    if response.status_code == 204:
        return []
    if not response.ok:
        raise DicomWebError(f"QIDO-RS {url} answered HTTP {response.status_code}")
    return response.json() or []


def list_instances(base: str, session: requests.Session | None = None, page: int = 500) -> list[WadoInstance]:
    """Every instance of every study on the server (QIDO-RS, paged with limit/offset)."""
    session = session or requests.Session()
    base = base.rstrip("/")
    studies: list[str] = []
    offset = 0
    while True:
        rows = _get_json(session, f"{base}/studies", {"limit": page, "offset": offset})
        studies.extend(_value(row, "0020000D") for row in rows)
        if len(rows) < page:
            break
        offset += page
    found: list[WadoInstance] = []
    for study in sorted(set(studies)):
        rows = _get_json(session, f"{base}/studies/{study}/instances")
        for row in rows:
            found.append(WadoInstance(study, _value(row, "0020000E"), _value(row, "00080018")))
    found.sort(key=lambda item: (item.study, item.series, item.instance))
    logger.info("DICOMweb: %d studies, %d instances", len(set(studies)), len(found))
    return found


def _split_multipart(body: bytes, content_type: str) -> list[bytes]:
    boundary = None
    for part in content_type.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise DicomWebError("WADO-RS answer has no multipart boundary")
    parts: list[bytes] = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        _, sep, payload = chunk.partition(b"\r\n\r\n")
        if sep:
            parts.append(payload[:-2] if payload.endswith(b"\r\n") else payload)
    return parts


def _bounded_body(response: requests.Response, max_bytes: int) -> bytes:
    """The body, read in chunks and refused as soon as it passes ``max_bytes`` (a declared
    Content-Length over it is refused before reading), so what a server claims or sends cannot
    take the worker's memory."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise DicomWebError(f"WADO-RS answer of {int(declared):,} bytes exceeds the limit of {max_bytes:,} bytes")
    body = bytearray()
    for chunk in response.iter_content(chunk_size=1 << 20):
        body += chunk
        if len(body) > max_bytes:
            raise DicomWebError(f"WADO-RS answer exceeds the limit of {max_bytes:,} bytes")
    return bytes(body)


def fetch_instance(url: str, session: requests.Session | None = None, max_bytes: int = 2**31) -> bytes:
    """The Part 10 bytes of one instance, in the transfer syntax the PACS stored it in (at most
    ``max_bytes`` of answer)."""
    session = session or requests.Session()
    with session.get(url, headers={"Accept": WADO_ACCEPT}, timeout=TIMEOUT_S, stream=True) as response:
        if not response.ok:
            raise DicomWebError(f"WADO-RS answered HTTP {response.status_code}")
        content = _bounded_body(response, max_bytes)
    content_type = response.headers.get("Content-Type", "")
    if content_type.lower().startswith("multipart/"):
        parts = _split_multipart(content, content_type)
        if len(parts) != 1:
            raise DicomWebError(f"WADO-RS returned {len(parts)} parts for one instance")
        return parts[0]
    return content
