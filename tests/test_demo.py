"""``ultra demo`` as a real subprocess: every endpoint of the page called with ``gradio_client`` on
the bundled examples and on bad files, and the page loaded by headless Chromium.

One server serves the whole module; its ``TMPDIR`` is the test's, so the private upload folder
is checked to be gone once the server stops.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from demo.chat import EXAMPLES
from demo.uploads import SessionFiles
from tests.servers import REPO_ROOT, free_port, running
from ultra import RESEARCH_NOTICE

BUSI = REPO_ROOT / "ultra" / "examples" / "busi"
DICOM = REPO_ROOT / "ultra" / "examples" / "dicom" / "us_rgb_color.dcm"
NOTICE = "仅供研究，非临床诊断"


def _untrained_student(folder: Path) -> Path:
    """A screening student over ``ultra-tiny-zh``'s fusion with an untrained head: the 报告筛选 tab's
    flow is tested (verdicts, duplicates, answers on kept images), not the quality of its weights."""
    from screening import new_student, save_student
    from ultra.answerer import Answerer

    fusion = Answerer.load().model.vision_tower
    student = new_student(fusion, backbone_source="tiny-zh", embed_dim=32, text_embed_dim=16, buckets=512)
    save_student(student, folder)
    return folder


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    private = tmp / "tmpdir"
    private.mkdir()
    student = _untrained_student(tmp / "student")
    args = ["demo", "--port", str(port), "--screening-student", str(student)]
    with running(args, url, tmp / "demo.log", env={"TMPDIR": str(private)}):
        yield url, tmp, private
    assert not list(private.glob("ultra-demo-*/run-*")), "the private upload folder outlived the demo"


@pytest.fixture(scope="module")
def url(demo_env) -> str:
    return demo_env[0]


def client(url: str) -> Client:
    return Client(url, verbose=False)


def texts_of(message: dict) -> str:
    return "".join(part.get("text", "") for part in message["content"])


def files_of(message: dict) -> list[str]:
    return [part["file"] for part in message["content"] if part.get("type") == "file"]


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_each_bundled_example_is_answered_in_one_call(url, name):
    chat, box, scans, header = client(url).predict(name, api_name="/ask_example")
    assert [m["role"] for m in chat] == ["user", "assistant"]
    assert texts_of(chat[0]) == EXAMPLES[name][1]
    assert len(files_of(chat[0])) == 1 and Path(files_of(chat[0])[0]).stat().st_size > 0
    assert texts_of(chat[1]).strip(), "empty answer"
    assert len(scans) == 1
    assert box == {"text": "", "files": []}
    if EXAMPLES[name][0].endswith(".dcm"):
        assert "ANON-" in header and "已去标识：YES" in header


def test_dicom_upload_is_shown_deidentified(url):
    original = pydicom.dcmread(DICOM)
    chat, _, scans, header = client(url).predict(
        {"text": "这是什么检查？", "files": [handle_file(DICOM)]}, api_name="/ask"
    )
    for phi in (str(original.PatientName), str(original.PatientID), str(original.StudyDate)):
        assert phi not in header, f"{phi!r} shown"
    assert "患者编号（假名）：ANON-" in header and "模态：US" in header
    shown = np.asarray(Image.open(files_of(chat[0])[0]).convert("RGB"))
    band = round(shown.shape[0] * 0.08)
    assert shown[:band].max() == 0, "the top band, where scanners burn in names, is not masked"


def test_multi_image_chat_follow_up_and_heat_map(url):
    c = client(url)
    first = {
        "text": "这两张图像有什么不同？",
        "files": [handle_file(BUSI / "benign-1.png"), handle_file(BUSI / "malignant-1.png")],
    }
    chat, _, scans, _ = c.predict(first, api_name="/ask")
    assert len(files_of(chat[0])) == 2 and len(scans) == 2
    chat, _, scans, _ = c.predict({"text": "哪一张更可能是恶性？", "files": []}, api_name="/ask")
    assert [m["role"] for m in chat] == ["user", "assistant"] * 2 and len(scans) == 2
    heat = c.predict(api_name="/explain")
    with Image.open(heat) as image:
        assert image.width > 200 and image.height > 200
    chat, scans, header = c.predict(api_name="/clear")
    assert chat == [] and scans == []


@pytest.mark.parametrize(
    ("name", "content"),
    [("bad.png", b"this is not a PNG"), ("bad.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00garbage")],
)
def test_bad_upload_gives_a_chinese_message(url, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AppError) as caught:
        client(url).predict({"text": "看图", "files": [handle_file(path)]}, api_name="/ask")
    message = str(caught.value)
    assert "第 1 个文件无法读取" in message
    assert "Traceback" not in message and name not in message


def test_heat_map_before_any_answer_is_refused_in_chinese(url):
    with pytest.raises(AppError, match="请先上传图像并得到一个回答"):
        client(url).predict(api_name="/explain")


def _write_video(path: Path, frames: int = 12) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for index in range(frames):
        frame = np.full((48, 64, 3), index * 20, dtype=np.uint8)
        writer.write(frame)
    writer.release()


def test_video_is_sampled_into_a_strip_then_answered(url, tmp_path):
    video = tmp_path / "clip.avi"
    _write_video(video)
    c = client(url)
    strip, chat = c.predict([handle_file(video)], api_name="/load_video")
    assert 1 <= len(strip) <= 12 and chat == []
    chat, box = c.predict("视频中发生了什么？", api_name="/ask_video")
    assert [m["role"] for m in chat] == ["user", "assistant"] and texts_of(chat[1]).strip()
    assert box == ""


def test_frames_uploaded_in_any_order_are_read_in_name_order(url, tmp_path):
    paths = []
    for index in (3, 1, 2, 10):
        path = tmp_path / f"frame_{index}.png"
        Image.new("RGB", (32, 32), (index * 20, 0, 0)).save(path)
        paths.append(path)
    strip, _ = client(url).predict([handle_file(p) for p in paths], api_name="/load_video")
    reds = [np.asarray(Image.open(item["image"]).convert("RGB"))[16, 16, 0] for item in strip]
    assert reds == sorted(reds), f"frames out of order: {reds}"


def test_bad_video_gives_a_chinese_message(url, tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video at all")
    with pytest.raises(AppError, match="视频无法读取"):
        client(url).predict([handle_file(path)], api_name="/load_video")


def test_laparoscopy_example_when_the_shared_data_is_present(url, shared_data):
    strip, chat = client(url).predict(api_name="/load_video_example")
    assert len(strip) >= 1 and chat == []


def test_report_example_is_screened_then_answered_on_kept_images(url):
    c = client(url)
    report, verdicts, chat = c.predict(api_name="/screen_example")
    example = json.loads((REPO_ROOT / "ultra" / "examples" / "report" / "report.json").read_text("utf-8"))
    assert report == example["report"] and chat == []
    captions = [item["caption"] for item in verdicts]
    assert len(captions) == 3 and all(re.match(r"图像 \d：权重 \d\.\d\d · ", c) for c in captions), captions
    weights = [float(re.search(r"权重 (\d\.\d\d)", c).group(1)) for c in captions]
    assert abs(sum(weights) - 1) < 0.02
    duplicates = [c for c in captions if "重复" in c]
    assert len(duplicates) == 1 and ("图像 1" in duplicates[0] or "图像 2" in duplicates[0]), captions
    assert any(c.endswith("保留") for c in captions)
    chat, box = c.predict("报告描述的病灶在哪张图像上？", api_name="/ask_report")
    assert [m["role"] for m in chat] == ["user", "assistant"] and texts_of(chat[1]).strip() and box == ""


def test_report_upload_with_a_bad_image_gives_a_chinese_message(url, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    files = [handle_file(BUSI / "benign-1.png"), handle_file(bad)]
    with pytest.raises(AppError, match="第 2 个文件无法读取"):
        client(url).predict("乳腺内见低回声结节。", files, api_name="/screen_report")


def test_session_files_are_private_and_removed_per_session(tmp_path):
    files = SessionFiles(tmp_path / "base")
    kept, other = files.new_file("abc123", ".png"), files.new_file("zzz", ".png")
    kept.write_bytes(b"x")
    other.write_bytes(b"y")
    assert kept.parent.name == "abc123" and (files.root.stat().st_mode & 0o777) == 0o700
    files.end_session("abc123")
    assert not kept.exists() and other.exists() and files.sessions() == ["zzz"]
    with pytest.raises(ValueError):
        files.folder("../escape")
    files.remove_all()
    assert not files.root.exists()


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_headless_chromium_renders_the_page(demo_env):
    url, tmp, _ = demo_env
    binary = chromium()
    if binary is None:
        pytest.skip("no chromium binary (Debian package `chromium`, installed by .ci/run)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,900",
        "--virtual-time-budget=20000",
    ]
    dom = subprocess.run(
        [binary, *flags, f"--user-data-dir={tmp / 'profile-dom'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "<title>ultra 中文超声视觉问答</title>" in dom
    for label in ("图像问答", "手术视频", "报告筛选", "各视觉编码器的融合权重", "生成证据热图"):
        assert label in dom, f"{label} missing from the rendered page"
    assert dom.count(NOTICE) >= 3 and RESEARCH_NOTICE in dom
    screenshot = tmp / "demo.png"
    subprocess.run(
        [binary, *flags, f"--user-data-dir={tmp / 'profile-shot'}", f"--screenshot={screenshot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    with Image.open(screenshot) as image:
        assert image.size == (1280, 900)
        assert np.asarray(image.convert("L")).std() > 5, "the screenshot is blank"


def test_auth_is_required_when_set(tmp_path):
    from gradio_client.exceptions import AuthenticationError

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with running(["demo", "--port", str(port), "--auth", "doc:secret"], url, tmp_path / "demo.log"):
        with pytest.raises(AuthenticationError):
            Client(url, verbose=False)
        chat, *_ = Client(url, auth=("doc", "secret"), verbose=False).predict(
            next(iter(EXAMPLES)), api_name="/ask_example"
        )
        assert texts_of(chat[1]).strip()
