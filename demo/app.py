"""The page: a Chinese ``gr.Blocks`` with the 图像问答 and 手术视频 tabs, and how it is launched
(loopback by default, optional password, a queue with a concurrency limit, analytics off).

Uploads (``demo.uploads``): Gradio's own folder lies in the run's private folder; handlers take
each file out of it, check its type and size on the server and delete it once read; the intake
folder is never served; uploads nobody submitted go after ``UNSUBMITTED_UPLOAD_S``; a file over
``max_file_size`` is refused in Chinese before it is stored; session folders go on ``unload``."""

from __future__ import annotations

import secrets
import signal
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from demo import texts
from demo.uploads import SessionFiles, UploadKinds, parse_size, too_large
from ultra.answerer.requests import DEFAULT_MODEL

# Gradio's cache sweep: every minute, files older than this go (uploads never submitted included;
# what the page shows is copied again from the session folder when it is shown again).
UNSUBMITTED_UPLOAD_S = 600
HEAD = '<meta name="description" content="ultra 中文超声视觉问答 — 仅供研究，非临床诊断">'


@dataclass(frozen=True)
class DemoOptions:
    """How the demo runs; defaults are the safe ones (loopback, no sharing, 20 MB uploads)."""

    model: str = DEFAULT_MODEL
    adapter: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    auth: tuple[str, str] | None = None
    max_file_size: str = "20mb"
    concurrency_limit: int = 2
    max_images: int = 8
    max_new_tokens: int = 128
    allow_untrained: bool = False
    screening_student: str | None = None


def build_demo(answerer, files: SessionFiles, options: DemoOptions, screener=None) -> gr.Blocks:
    """The Blocks app over one loaded ``Answerer``; ``files`` holds the sessions' folders; the
    报告筛选 tab appears only with a ``screening.ReportScreener``."""
    from demo.chat import EXAMPLES, ChatState, ImageChat
    from demo.report import ReportScreening, ReportState
    from demo.video import EXAMPLE_NAME, VideoChat, VideoState, example_frames
    from ultra.dicom.deid import Deidentifier
    from ultra.media import DEFAULT_LIMITS

    deid = Deidentifier(secrets.token_bytes(32))  # per run: pseudonyms are for display only
    max_bytes = parse_size(options.max_file_size)
    images = UploadKinds.images(max_bytes)
    chat = ImageChat(
        answerer, files, deid, DEFAULT_LIMITS, images, options.max_images, options.max_new_tokens
    )
    video = VideoChat(answerer, files, DEFAULT_LIMITS, UploadKinds.video(max_bytes), options.max_new_tokens)
    weights = answerer.model.vision_tower.fusion_weights()

    sweep = (60, UNSUBMITTED_UPLOAD_S)
    with gr.Blocks(title=texts.TITLE, analytics_enabled=False, delete_cache=sweep) as blocks:
        gr.Markdown(f"# {texts.TITLE}\n\n{texts.INTRO}\n\n**{texts.NOTICE}**", elem_id="intro")
        with gr.Tab(texts.TAB_IMAGE, id="image"):
            state = gr.State(ChatState())
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(label=texts.TAB_IMAGE, height=420, buttons=["copy"])
                    gr.Markdown(texts.NOTICE, elem_classes=["notice"])
                    box = gr.MultimodalTextbox(
                        placeholder=texts.CHAT_PLACEHOLDER,
                        file_count="multiple",
                        file_types=[".png", ".jpg", ".jpeg", ".dcm", ".dicom"],
                        show_label=False,
                    )
                    with gr.Row():
                        explain_button = gr.Button("生成证据热图")
                        clear_button = gr.Button("清空对话")
                    example = gr.Textbox(visible=False)
                    gr.Examples(
                        examples=[[name] for name in EXAMPLES],
                        inputs=[example],
                        label="示例（点击即运行）",
                    )
                with gr.Column(scale=2):
                    gr.Label(weights, label=texts.FUSION_LABEL, show_heading=False)
                    scans = gr.Gallery(label=texts.SCAN_LABEL, columns=3, height=220)
                    header = gr.Markdown("（无 DICOM 文件）", label=texts.HEADER_LABEL)
                    heatmap = gr.Image(label=texts.HEATMAP_LABEL, type="filepath", interactive=False)
                    gr.Markdown(texts.NOTICE, elem_classes=["notice"])
            outputs = [chatbot, state, box, scans, header]
            # preprocess=False: Gradio's own file_types check would refuse in English and leave the
            # file behind; the handlers check type and size themselves and delete every upload
            box.submit(chat.ask, [box, state], outputs, api_name="ask", preprocess=False)
            example.change(chat.ask_example, [example, state], outputs, api_name="ask_example")
            explain_button.click(chat.explain, [state], [heatmap], api_name="explain")
            clear_button.click(chat.clear, None, [chatbot, state, scans, header], api_name="clear")

        with gr.Tab(texts.TAB_VIDEO, id="video"):
            video_state = gr.State(VideoState())
            with gr.Row():
                with gr.Column(scale=2):
                    upload = gr.File(
                        label="上传一段短视频或若干帧图像",
                        file_count="multiple",
                        file_types=["video", ".png", ".jpg", ".jpeg"],
                    )
                    load_button = gr.Button("读取并采样")
                    if example_frames():
                        example_button = gr.Button(EXAMPLE_NAME)
                    strip = gr.Gallery(label=texts.FRAMES_LABEL, columns=8, height=160)
                with gr.Column(scale=3):
                    video_chat = gr.Chatbot(label=texts.TAB_VIDEO, height=360)
                    gr.Markdown(texts.NOTICE, elem_classes=["notice"])
                    question = gr.Textbox(placeholder=texts.VIDEO_PLACEHOLDER, show_label=False)
            load_button.click(
                video.load, [upload], [strip, video_state, video_chat], api_name="load_video", preprocess=False
            )
            if example_frames():
                example_button.click(
                    video.load_example, None, [strip, video_state, video_chat], api_name="load_video_example"
                )
            question.submit(
                video.ask, [question, video_state], [video_chat, video_state, question], api_name="ask_video"
            )

        if screener is not None:
            report_tab = ReportScreening(
                answerer, screener, files, deid, DEFAULT_LIMITS, images, options.max_new_tokens
            )
            with gr.Tab(texts.TAB_REPORT, id="report"):
                report_state = gr.State(ReportState())
                with gr.Row():
                    with gr.Column(scale=2):
                        report_text = gr.Textbox(label="报告文本", lines=3)
                        report_files = gr.File(
                            label="报告图像（PNG/JPEG/DICOM，多张）",
                            file_count="multiple",
                            file_types=[".png", ".jpg", ".jpeg", ".dcm", ".dicom"],
                        )
                        with gr.Row():
                            screen_button = gr.Button("筛选图像")
                            report_example = gr.Button("示例报告（三张图像，其中一张近似重复）")
                        verdicts = gr.Gallery(label=texts.VERDICTS_LABEL, columns=3, height=260)
                    with gr.Column(scale=3):
                        report_chat = gr.Chatbot(label="基于保留图像的问答", height=360)
                        gr.Markdown(texts.NOTICE, elem_classes=["notice"])
                        report_question = gr.Textbox(placeholder="关于保留图像的问题…", show_label=False)
                screen_outputs = [verdicts, report_state, report_chat]
                screen_button.click(
                    report_tab.screen,
                    [report_text, report_files],
                    screen_outputs,
                    api_name="screen_report",
                    preprocess=False,
                )
                report_example.click(
                    report_tab.screen_example, None, [report_text, *screen_outputs], api_name="screen_example"
                )
                report_question.submit(
                    report_tab.ask,
                    [report_question, report_state],
                    [report_chat, report_state, report_question],
                    api_name="ask_report",
                )

        def end_session(request: gr.Request) -> None:
            files.end_session(request.session_hash)

        blocks.unload(end_session)
    return blocks


class UploadLimitMessage:
    """Gradio's upload route answers a file over ``max_file_size`` with 413 (the partial file
    deleted) in English; the page's users read Chinese. Only that route passes through here."""

    def __init__(self, app, message: str) -> None:
        self.app = app
        self.body = message.encode("utf-8")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/upload"):
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_in_chinese(message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                replaced = True
                headers = [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(self.body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 413, "headers": headers})
                await send({"type": "http.response.body", "body": self.body})
            elif not replaced:
                await send(message)

        await self.app(scope, receive, send_in_chinese)


def check_upload_folder(files: SessionFiles) -> None:
    """Refuse to serve when Gradio's upload folder is not the run's private one (Gradio reads
    ``GRADIO_TEMP_DIR`` when imported; ``ultra demo`` sets it first)."""
    from gradio.utils import get_upload_folder

    if Path(get_upload_folder()).resolve() != files.gradio_cache.resolve():
        raise RuntimeError(
            "Gradio's upload folder is not the demo's private folder: set GRADIO_TEMP_DIR from "
            "SessionFiles.gradio_environment() before Gradio is imported (ultra demo does)"
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def launch_demo(options: DemoOptions, files: SessionFiles) -> None:
    """Load the model and serve the page until interrupted; every session folder goes at exit."""
    from demo.report import screener_for
    from demo.video import shared_data_root
    from ultra.answerer import Answerer

    signal.signal(signal.SIGTERM, _interrupt)  # a service stop cleans up like Ctrl-C
    try:
        check_upload_folder(files)
        answerer = Answerer.load(
            options.model, adapter=options.adapter, allow_untrained=options.allow_untrained
        )
        blocks = build_demo(answerer, files, options, screener_for(options.screening_student))
        blocks.queue(default_concurrency_limit=options.concurrency_limit, max_size=64)
        examples = Path(__file__).resolve().parents[1] / "ultra" / "examples"
        blocks.launch(
            server_name=options.host,
            server_port=options.port,
            auth=options.auth,
            max_file_size=options.max_file_size,
            allowed_paths=[str(files.shown), str(examples), str(shared_data_root() / "laparoscopy_frames")],
            blocked_paths=[str(files.intake)],
            app_kwargs={
                "middleware": [
                    Middleware(UploadLimitMessage, message=too_large(parse_size(options.max_file_size)))
                ]
            },
            share=False,
            show_error=False,
            quiet=True,
            footer_links=[],
            head=HEAD,
        )
        blocks.close()
    finally:
        files.remove_all()
