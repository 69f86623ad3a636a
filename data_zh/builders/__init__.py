"""Instruction and benchmark builders: Chinese data from real labels only."""

from data_zh.builders.busi import build_busi_instructions, build_busi_vqa

__all__ = ["build_busi_instructions", "build_busi_vqa"]
