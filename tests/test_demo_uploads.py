"""Uploads to ``ultra demo`` as a stranger's browser would send them, against a real server on
127.0.0.1: a DICOM named after a patient leaves no file with its name or bytes once answered and
is never served; other types and oversize files are refused in Chinese and leave nothing; what a
killed run left behind is deleted at the next start. Plus ``demo.uploads`` alone (no server)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from demo.uploads import SessionFiles, UploadKinds, UploadRefused, remove_leftovers
from tests.servers import REPO_ROOT, free_port, running

DICOM = REPO_ROOT / "ultra" / "examples" / "dicom" / "us_rgb_color.dcm"
PATIENT = "张三丰"
LIMIT_MB = 1


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.name != ".lock"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _args(port: int) -> list[str]:
    return ["demo", "--port", str(port), "--max-file-size", f"{LIMIT_MB}mb"]


def _killed_run(tmp: Path, env: dict[str, str]) -> Path:
    """The run folder of a demo killed with ``kill -9`` while an upload waited in it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    named = tmp / f"{PATIENT}_未提交.dcm"
    shutil.copyfile(DICOM, named)
    with running(_args(port), url, tmp / "killed.log", env=env) as process:
        (uploaded,) = _upload(url, named).json()
        process.kill()
        process.wait()
    assert Path(uploaded).is_file(), "nothing left behind: the test would not test the next start"
    return Path(uploaded).parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One demo whose ``TMPDIR`` is the test's, started over what a killed run and a dead run
    without its lock file left behind."""
    tmp = tmp_path_factory.mktemp("uploads")
    env = {"TMPDIR": str(tmp / "tmpdir")}
    base = tmp / "tmpdir" / f"ultra-demo-{os.getuid()}"
    stale = base / "run-stale"
    (stale / "intake").mkdir(parents=True)
    (stale / "intake" / f"{PATIENT}_遗留.dcm").write_bytes(DICOM.read_bytes())
    killed = _killed_run(tmp, env)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with running(_args(port), url, tmp / "demo.log", env=env):
        (root,) = base.glob("run-*")
        yield url, base, root, [stale, killed]
    assert not list(base.glob("run-*")), "the run's private folder outlived the demo"


def _upload(url: str, path: Path) -> httpx.Response:
    with path.open("rb") as handle:
        return httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, handle)}, timeout=30)


def _ask(url: str, server_path: str, name: str):
    """The 图像问答 question with a file already uploaded (so the test knows where Gradio put it)."""
    upload = {"path": server_path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}
    message = {"text": "这是什么检查？", "files": [upload]}
    return Client(url, verbose=False).predict(message, api_name="/ask")


def test_what_dead_runs_left_is_deleted_at_the_next_start(server):
    _, base, root, leftovers = server
    assert not any(folder.exists() for folder in leftovers)
    assert _mode(base) == 0o700 and _mode(root) == 0o700


def test_a_dicom_named_after_a_patient_leaves_nothing_and_is_never_served(server, tmp_path):
    url, _, root, _ = server
    named = tmp_path / f"{PATIENT}_乳腺超声.dcm"
    shutil.copyfile(DICOM, named)
    content = named.read_bytes()
    response = _upload(url, named)
    assert response.status_code == 200, response.text
    (uploaded,) = response.json()
    assert Path(uploaded).is_relative_to(root / "gradio"), "the raw upload left the private folder"
    chat, _, scans, header = _ask(url, uploaded, named.name)
    assert len(scans) == 1 and "患者编号（假名）：ANON-" in header
    for path in _files_under(root):
        assert PATIENT not in str(path), f"a file still carries the patient's name: {path}"
        assert path.read_bytes() != content, f"the raw upload is still on disk: {path}"
    assert _mode(root / "intake") == 0o700 and not list((root / "intake").iterdir())
    refused = httpx.get(f"{url}gradio_api/file={uploaded}", timeout=10)
    assert refused.status_code in (403, 404) and content[:1000] not in refused.content


def test_another_type_is_refused_in_chinese_and_leaves_nothing(server, tmp_path):
    url, _, root, _ = server
    blob = tmp_path / f"{PATIENT}.bin"
    blob.write_bytes(os.urandom(200_000))
    response = _upload(url, blob)
    (uploaded,) = response.json()
    with pytest.raises(AppError) as caught:
        _ask(url, uploaded, blob.name)
    message = str(caught.value)
    assert "第 1 个文件无法读取" in message and "不支持的文件类型（.bin）" in message
    assert PATIENT not in message and "Traceback" not in message
    assert not Path(uploaded).exists() and not Path(uploaded).parent.exists()
    assert not any(p.read_bytes() == blob.read_bytes() for p in _files_under(root))


def test_an_oversize_file_is_refused_in_chinese_before_it_is_stored(server, tmp_path):
    url, _, root, _ = server
    big = tmp_path / f"{PATIENT}.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(LIMIT_MB * (1 << 20) + 10_000))
    before = set(_files_under(root))
    response = _upload(url, big)
    assert response.status_code == 413 and response.text == f"文件过大：每个文件不超过 {LIMIT_MB} MB。"
    assert set(_files_under(root)) <= before, "part of the refused upload stayed on disk"


def test_take_refuses_by_type_and_size_and_deletes_every_file_given(tmp_path):
    files = SessionFiles(tmp_path / "base")
    try:
        staged = []
        for index, (name, size) in enumerate([("a.png", 10), ("b.dcm", 5000), ("c.PNG", 10)]):
            folder = files.gradio_cache / f"hash{index}"
            folder.mkdir()
            (folder / name).write_bytes(b"x" * size)
            staged.append(folder / name)
        kinds = UploadKinds.images(max_bytes=2048)
        with pytest.raises(UploadRefused) as caught, files.take(staged, kinds):
            pass
        assert caught.value.offset == 1 and caught.value.reason == "文件过大：每个文件不超过 2 KB。"
        assert not _files_under(files.gradio_cache) and not _files_under(files.intake)
        assert not list(files.gradio_cache.iterdir()), "the per-upload hash folders stayed"
        outside = tmp_path / "not-an-upload.png"
        outside.write_bytes(b"x")
        with pytest.raises(UploadRefused, match="不是本页上传的文件"), files.take([outside], kinds):
            pass
        assert outside.exists(), "a file outside Gradio's upload folder was touched"
    finally:
        files.remove_all()
    assert not files.root.exists()


def test_a_living_runs_folder_is_kept_and_a_dead_ones_removed(tmp_path):
    base = tmp_path / "base"
    living = SessionFiles(base)
    try:
        dead = base / "run-dead"
        (dead / "intake").mkdir(parents=True)
        (dead / ".lock").touch()
        unlocked = base / "run-nolock"
        unlocked.mkdir()
        assert remove_leftovers(base) == 2
        assert living.root.is_dir() and not dead.exists() and not unlocked.exists()
        second = SessionFiles(base)
        assert second.removed_leftovers == 0 and living.root.is_dir()
        second.remove_all()
    finally:
        living.remove_all()
    assert _mode(base) == 0o700 and not list(base.glob("run-*"))
