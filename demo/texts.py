"""The interface's words, in Chinese (the audience), with the research notice in one place."""

from __future__ import annotations

from ultra import RESEARCH_NOTICE

TITLE = "ultra 中文超声视觉问答"
NOTICE = f"【注意】{RESEARCH_NOTICE}"
INTRO = (
    "上传超声图像（PNG/JPEG/DICOM）后用中文提问，回答逐字显示。DICOM 仅显示去标识化后的内容。"
    "\n\nUpload ultrasound images (PNG/JPEG/DICOM) and ask in Chinese or English."
)
TAB_IMAGE = "图像问答"
TAB_VIDEO = "手术视频"
TAB_REPORT = "报告筛选"
VERDICTS_LABEL = "每张图像的权重与取舍"
CHAT_PLACEHOLDER = "输入问题，可附带一张或多张图像（PNG/JPEG/DICOM）…"
VIDEO_PLACEHOLDER = "关于该视频片段的问题…"
NO_QUESTION = "请输入问题。"
NO_IMAGE_FOR_MAP = "请先上传图像并得到一个回答，再生成证据热图。"
NO_VIDEO = "请先上传一段视频或若干帧图像。"
EMPTY_ANSWER = "回答为空，无法生成热图。"
PROMPT_TOO_LONG = "对话过长，超出模型的上下文长度：请清空对话或减少图像后重试。"
TOO_MANY_IMAGES = "一次最多上传 {limit} 张图像。"
FUSION_LABEL = "各视觉编码器的融合权重"
SCAN_LABEL = "扫描区域（绿框为检测到的超声扫描区域）"
HEADER_LABEL = "DICOM 信息（去标识化）"
HEATMAP_LABEL = "证据热图（遮挡敏感度）"
FRAMES_LABEL = "采样帧（模型看到的帧）"


def unreadable(index: int, reason: str) -> str:
    """A bad upload, named by its position (never its file name, which may name a patient)."""
    return f"第 {index} 个文件无法读取（请上传 PNG/JPEG 图像或 DICOM 文件）：{reason}"


def unreadable_video(reason: str) -> str:
    return f"视频无法读取（请上传视频文件或若干帧图像）：{reason}"
