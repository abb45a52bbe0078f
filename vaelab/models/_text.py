"""A tiny caption embedder of our own (VideoVAE+'s text conditioning without a pretrained LLM).

VideoVAE+ embeds captions with a frozen Flan-T5-large (1024-d tokens) and lets the VAE attend to
them. The lab replaces it with something a CPU can train from scratch together with the VAE:

    caption "a cat on a sofa"
      -> words (lower-case [a-z0-9]+ runs), at most ``max_tokens``
      -> hashed word ids: 2 + crc32(word) mod (vocab - 2)       (0 = padding; stable across runs,
                                                                 no vocabulary file; rare collisions)
      -> embedding table (vocab, dim) + learned positions
      -> ``layers`` pre-LN transformer blocks (self-attention + MLP), final LayerNorm
      -> tokens (B, L, dim) and a validity mask (B, L)

``None`` (or an empty caption) means "no caption": the row is one learned null token, so the
cross-attention layers always have something to attend to and an unconditional path is learned
alongside the conditional one (train with some captions dropped to None).

Hashing instead of a vocabulary: any word maps to an id, so captions never fail to tokenise, and
identical words share an embedding across captions ("a photo of a cat" / "a photo of a dog"
differ in one token). It knows nothing about language beyond what training teaches it.
"""
from __future__ import annotations

import re
import zlib
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Caption = str | None

_WORD = re.compile(r"[a-z0-9]+")


def words(caption: str) -> list[str]:
    return _WORD.findall(caption.lower())


def hash_ids(caption: str, vocab: int, max_tokens: int) -> list[int]:
    """Stable hashed word ids in [2, vocab) (crc32, not Python's per-process ``hash``)."""
    return [2 + zlib.crc32(w.encode()) % (vocab - 2) for w in words(caption)[:max_tokens]]


def as_caption_list(caption: Caption | Sequence[Caption], batch: int) -> list[Caption]:
    """Normalise ``None`` / one string / one per sample to a list of ``batch`` captions (None = no caption)."""
    if caption is None or isinstance(caption, str):
        return [caption or None] * batch
    caps = [c or None for c in caption]
    if len(caps) == 1 and batch > 1:
        caps = caps * batch
    if len(caps) != batch:
        raise ValueError(f"got {len(caps)} captions for a batch of {batch}")
    for c in caps:
        if c is not None and not isinstance(c, str):
            raise TypeError(f"captions must be str or None, got {type(c).__name__}")
    return caps


class TextBlock(nn.Module):
    """Pre-LN transformer block: x + SelfAttn(LN(x)) masked to valid tokens, then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :])
        x = x + self.proj(out.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class TextEmbedder(nn.Module):
    """Captions -> (tokens (B, L, dim), valid (B, L) bool). L = longest caption in the batch (>= 1)."""

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 4, vocab: int = 4096, max_tokens: int = 32):
        super().__init__()
        if dim % heads:
            raise ValueError(f"text dim {dim} is not divisible by {heads} heads")
        self.dim, self.vocab, self.max_tokens = dim, vocab, max_tokens
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        self.null = nn.Parameter(torch.randn(dim) * 0.02)  # the "no caption" token
        self.blocks = nn.ModuleList(TextBlock(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def tokenize(self, captions: Sequence[Caption]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, L) long, valid (B, L) bool); a row without words (None, "", "!!") has no valid token."""
        rows = [hash_ids(c, self.vocab, self.max_tokens) if c else [] for c in captions]
        n = max([len(r) for r in rows] + [1])
        ids = torch.zeros(len(rows), n, dtype=torch.long, device="cpu")  # real ids even under a meta device context
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r, dtype=torch.long, device="cpu")
        return ids, ids > 0

    def forward(self, captions: Sequence[Caption]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.pos.device
        ids, valid = self.tokenize(captions)
        empty_cpu = ~valid.any(1)  # decided on the CPU ids: no device sync, and it works on the meta device
        ids, valid, empty = ids.to(device), valid.to(device), empty_cpu.to(device)
        attend = valid.clone()
        attend[:, 0] |= empty  # keep softmax defined on rows without words; they are replaced below
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        for block in self.blocks:
            x = block(x, attend)
        x = self.norm(x)
        if empty_cpu.any():
            null = torch.zeros_like(x[0])
            null[0] = self.null
            x = torch.where(empty[:, None, None], null, x)
        return x, attend
