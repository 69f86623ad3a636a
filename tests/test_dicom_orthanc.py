"""A real PACS: Orthanc with its DICOMweb plugin on loopback, read through QIDO-RS/WADO-RS."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests

from tests.test_dicom_written import write_all
from ultra.dicom import ProcessOptions, run_batch
from ultra.dicom.dicomweb import fetch_instance, list_instances

pytestmark = pytest.mark.orthanc
# RLE, JPEG 2000, JPEG baseline cine, 16-bit palette; each with its own SOP Instance UID.
FILES = ["OBXXXX1A_rle_2frame.dcm", "US1_J2KI.dcm", "examples_ybr_color.dcm", "gdcm-US-ALOKA-16.dcm"]
PLUGIN_VARIABLE = "ULTRA_ORTHANC_DICOMWEB_PLUGIN"
"""Where the DICOMweb plugin is when no Debian package records it (any other install)."""


def _orthanc_binary() -> str | None:
    return shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin")


def _dicomweb_plugin() -> str | None:
    """The plugin's path from the environment, else from the Debian package's own file list."""
    named = os.environ.get(PLUGIN_VARIABLE)
    if named:
        return named if Path(named).is_file() else None
    if shutil.which("dpkg"):
        listing = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True).stdout
        found = [line for line in listing.splitlines() if line.endswith("libOrthancDicomWeb.so") and Path(line).is_file()]
        if found:
            return sorted(found, key=len)[0]
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> Iterator[str]:
    binary, plugin = _orthanc_binary(), _dicomweb_plugin()
    if binary is None:
        pytest.skip("Orthanc is not on PATH (install the Debian packages orthanc and orthanc-dicomweb)")
    if plugin is None:
        pytest.skip(f"the Orthanc DICOMweb plugin is not installed (Debian package orthanc-dicomweb, or set {PLUGIN_VARIABLE})")
    root = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port = _free_port(), _free_port()
    config = {
        "Name": "ultra-test",
        "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "Plugins": [plugin],
    }
    (root / "config.json").write_text(json.dumps(config))
    with open(root / "orthanc.log", "wb") as log:
        process = subprocess.Popen([binary, str(root / "config.json")], stdout=log, stderr=subprocess.STDOUT)
        try:
            yield _wait_until_up(f"http://127.0.0.1:{http_port}", process, root / "orthanc.log")
        finally:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def _wait_until_up(base: str, process: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{base}/system", timeout=2).ok:
                return base
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"Orthanc did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.3)


def test_pacs_run_matches_folder_run(orthanc: str, shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in FILES:
        shutil.copy(shared_data / "dicom" / "us" / name, folder / name)
        response = requests.post(f"{orthanc}/instances", data=(folder / name).read_bytes(), timeout=30)
        assert response.ok, response.text
    base = f"{orthanc}/dicom-web"
    listed = list_instances(base)
    assert len(listed) == len(FILES)
    originals = {pydicom.dcmread(folder / n).SOPInstanceUID: pydicom.dcmread(folder / n) for n in FILES}
    for item in listed:
        fetched = pydicom.dcmread(io.BytesIO(fetch_instance(item.url(base))))
        original = originals[item.instance]
        assert fetched.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID  # not transcoded
    key = tmp_path / "key"
    key.write_text("orthanc-test-key-0123456789abcdef")
    from_folder, from_pacs = tmp_path / "out_folder", tmp_path / "out_pacs"
    a = run_batch(folder, from_folder, ProcessOptions(), workers=1, deid_key=key)
    b = run_batch(base, from_pacs, ProcessOptions(), workers=2, deid_key=key)
    assert (
        (b.inputs, b.processed, b.failed) == (a.inputs, a.processed, a.failed) == (len(FILES), len(FILES), 0)
    )
    assert (from_pacs / "results.jsonl").read_text() == (from_folder / "results.jsonl").read_text()
    pngs = sorted(p.relative_to(from_folder) for p in from_folder.rglob("*.png"))
    assert pngs and pngs == sorted(p.relative_to(from_pacs) for p in from_pacs.rglob("*.png"))
    for rel in pngs:
        assert (from_folder / rel).read_bytes() == (from_pacs / rel).read_bytes()
    for meta in from_folder.rglob("metadata/**/*.json"):
        left = json.loads(meta.read_text())
        right = json.loads((from_pacs / meta.relative_to(from_folder)).read_text())
        assert left["dicom"] == right["dicom"]


def test_orthanc_stores_every_written_dicom(orthanc: str, shared_data: Path, tmp_path: Path) -> None:
    """Each written DICOM of the 16 real files (masked and as read) is stored, and given back as sent."""
    written = write_all(shared_data, tmp_path, ("masked", "unmasked"))
    files = [w.path for outputs in written.values() for w in outputs if w.path is not None]
    assert len(files) >= 16 + 8
    for path in files:
        data = path.read_bytes()
        response = requests.post(f"{orthanc}/instances", data=data, timeout=30)
        assert response.ok, (path.name, response.status_code, response.text)
        answer = response.json()
        assert answer["Status"] == "Success", (path.name, answer)
        instance = f"{orthanc}/instances/{answer['ID']}"
        assert requests.get(f"{instance}/file", timeout=30).content == data
        tags = requests.get(f"{instance}/simplified-tags", timeout=30).json()
        assert tags["PatientIdentityRemoved"] == "YES"
        assert tags["SOPInstanceUID"] == pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        # The shared files repeat SOP Instance UIDs (and masked/as-read share one): store each afresh.
        assert requests.delete(instance, timeout=30).ok
