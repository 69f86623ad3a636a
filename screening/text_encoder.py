"""The student's text side: jieba words (with the medical dictionary) and their characters, hashed.

Why not the LLM's byte-level BPE tokenizer: it belongs to ``ultra``'s model (screening may not
import it) and its pieces ignore medical terms, while ``data_zh``'s jieba tokenizer keeps
低回声 or BI-RADS whole. Why hashing instead of a vocabulary built from training reports: the
benchmark asks about report wordings the student never saw, and a learned vocabulary maps every
new word to one unknown id. Each word contributes its own bucket and one per character, so an
unseen word still lands on the characters it shares with known ones, and nothing beyond the
bucket count has to be saved.
"""

from __future__ import annotations

import zlib

import torch
from torch import nn

from data_zh.text import normalize_zh, tokenize_zh

PADDING_ID = 0


class ReportTokenizer:
    """Report text -> hashed ids in ``[1, buckets]`` (0 is padding)."""

    def __init__(self, buckets: int, max_tokens: int) -> None:
        if buckets < 2 or max_tokens < 1:
            raise ValueError(
                f"ReportTokenizer: buckets >= 2 and max_tokens >= 1, got {buckets}, {max_tokens}"
            )
        self.buckets = buckets
        self.max_tokens = max_tokens

    def _bucket(self, kind: str, piece: str) -> int:
        return zlib.crc32(f"{kind}:{piece}".encode()) % self.buckets + 1

    def ids(self, text: str) -> list[int]:
        """Word ids, each followed by its characters' ids when the word is longer than one."""
        ids: list[int] = []
        for word in tokenize_zh(normalize_zh(text), mode="jieba"):
            ids.append(self._bucket("w", word))
            if len(word) > 1:
                ids.extend(self._bucket("c", char) for char in word)
        return ids[: self.max_tokens] or [self._bucket("w", "")]

    def batch(self, texts: list[str]) -> torch.Tensor:
        """``[B, L]`` ids, right-padded with 0."""
        rows = [self.ids(text) for text in texts]
        out = torch.full((len(rows), max(len(row) for row in rows)), PADDING_ID, dtype=torch.long)
        for index, row in enumerate(rows):
            out[index, : len(row)] = torch.tensor(row)
        return out


class TextEncoder(nn.Module):
    """Embeddings pooled by a learned attention over tokens, then a small MLP: ``[B, L] -> [B, out]``.

    Attention pooling rather than a mean, so negations like 未见 can outweigh filler words.
    """

    def __init__(self, buckets: int, embed_dim: int, out_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(buckets + 1, embed_dim, padding_idx=PADDING_ID)
        self.attention = nn.Linear(embed_dim, 1)
        self.mlp = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, out_dim), nn.GELU())
        self.out = nn.Linear(out_dim, out_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(ids)
        logits = self.attention(embedded).squeeze(-1).masked_fill(ids == PADDING_ID, float("-inf"))
        pooled = (torch.softmax(logits, dim=-1).unsqueeze(-1) * embedded).sum(dim=1)
        hidden = self.mlp(pooled)
        return hidden + self.out(hidden)
