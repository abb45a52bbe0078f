"""Checkpoint key layouts: CompVis/LDM/taming names -> the diffusers names our modules use.

Shared by ``official`` (published SD / VQGAN files) and the families whose released files use the LDM layout
(``cv_vae``), so neither has to import the other.
"""
from __future__ import annotations

import re

import torch

from .base import WeightsError

_LDM_MARKERS = ("encoder.down.", "decoder.up.", "encoder.mid.block_1.", "decoder.mid.block_1.")


def strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The autoencoder's own keys: inside a full SD checkpoint only ``first_stage_model.*`` (prefix removed),
    and never a Lightning checkpoint's training-only ``loss.*`` (discriminator, LPIPS) keys."""
    prefix = "first_stage_model."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in state.items() if not k.startswith("loss.")}


def is_ldm_layout(state: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith(_LDM_MARKERS) for k in state)


_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def ldm_to_diffusers(state: dict[str, torch.Tensor], in_level_attention: bool = False) -> dict[str, torch.Tensor]:
    """CompVis/LDM/taming encoder-decoder keys -> diffusers names (what our modules use).

    Keys outside the encoder/decoder (``quant_conv``, ``post_quant_conv``, ``quantize.embedding``) keep
    their names. Attention blocks inside a resolution level (taming's ``attn_resolutions``:
    ``encoder.down.{i}.attn.{j}``, ``decoder.up.{i}.attn.{j}``) map to ``down_blocks.{i}.attentions.{j}`` /
    ``up_blocks.{L-1-i}.attentions.{j}`` when ``in_level_attention`` (the VQGAN tree has them); otherwise
    they raise WeightsError (the SD-VAE tree has attention only in the mid block).
    """
    in_level_attn = sorted(k for k in state if re.match(r"(encoder\.down|decoder\.up)\.\d+\.attn\.", k))
    if in_level_attn and not in_level_attention:
        raise WeightsError(
            "not supported because this checkpoint has attention blocks inside a resolution level (e.g. "
            f"{in_level_attn[0]}; taming's attn_resolutions), and VAE Lab's LDM skeleton has attention only in "
            "the mid block")
    n_up = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"decoder\.up\.(\d+)\.", k))), default=-1)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        if m := re.match(r"encoder\.down\.(\d+)\.block\.(\d+)\.(.*)", key):
            new = f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{m[3]}"
        elif m := re.match(r"encoder\.down\.(\d+)\.downsample\.(.*)", key):
            new = f"encoder.down_blocks.{m[1]}.downsamplers.0.{m[2]}"
        elif m := re.match(r"decoder\.up\.(\d+)\.block\.(\d+)\.(.*)", key):
            new = f"decoder.up_blocks.{n_up - 1 - int(m[1])}.resnets.{m[2]}.{m[3]}"
        elif m := re.match(r"decoder\.up\.(\d+)\.upsample\.(.*)", key):
            new = f"decoder.up_blocks.{n_up - 1 - int(m[1])}.upsamplers.0.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid\.block_([12])\.(.*)", key):
            new = f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{m[3]}"
        elif m := re.match(r"(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$", key):
            new = f"{m[1]}.mid_block.attentions.0.{_ATTN[m[2]]}.{m[3]}"
            if m[2] != "norm" and m[3] == "weight" and value.ndim == 4:
                value = value[:, :, 0, 0]  # 1x1 conv -> Linear
        elif m := re.match(r"encoder\.down\.(\d+)\.attn\.(\d+)\.(norm|q|k|v|proj_out)\.(weight|bias)$", key):
            new = f"encoder.down_blocks.{m[1]}.attentions.{m[2]}.{_ATTN[m[3]]}.{m[4]}"
            if m[3] != "norm" and m[4] == "weight" and value.ndim == 4:
                value = value[:, :, 0, 0]
        elif m := re.match(r"decoder\.up\.(\d+)\.attn\.(\d+)\.(norm|q|k|v|proj_out)\.(weight|bias)$", key):
            new = f"decoder.up_blocks.{n_up - 1 - int(m[1])}.attentions.{m[2]}.{_ATTN[m[3]]}.{m[4]}"
            if m[3] != "norm" and m[4] == "weight" and value.ndim == 4:
                value = value[:, :, 0, 0]
        elif m := re.match(r"(encoder|decoder)\.norm_out\.(.*)", key):
            new = f"{m[1]}.conv_norm_out.{m[2]}"
        out[new.replace(".nin_shortcut.", ".conv_shortcut.")] = value
    return out


__all__ = ["is_ldm_layout", "ldm_to_diffusers", "strip_wrappers"]
