"""FLOPs counted one way (vaelab.analysis.complexity on the meta device): analytic counts for a convolution and
an attention block, and the Models table, the bench and the counter agree."""
from __future__ import annotations

import pytest
import torch

from vaelab import models
from vaelab.analysis.complexity import encoder_decoder_stats, meta_flops, model_flops, smallest_clip_frames
from vaelab.models._blocks import Attention, Conv3d


def _forward(m, x):
    return m(x)


def _nothing(m, z):
    return None


def test_meta_counter_counts_a_conv3d_analytically():
    # big enough for our Conv3d to take its direct oneDNN call on CPU (N*C*D*H*W > 20480), which a CPU count misses
    cin, cout, d, h, w = 8, 16, 5, 24, 24
    n = meta_flops(lambda: Conv3d(cin, cout, 3, padding=1), _forward, _nothing, (1, cin, d, h, w))[0]
    assert n == 2 * cout * d * h * w * cin * 27  # 2 per multiply-add, bias not counted


def test_meta_counter_counts_an_attention_block_analytically():
    c, h, w = 32, 8, 12
    tokens = h * w
    n = meta_flops(lambda: Attention(c), _forward, _nothing, (2, c, h, w))[0]
    projections = 4 * 2 * tokens * c * c  # q, k, v, out
    scores_and_mix = 2 * (2 * tokens * tokens * c)  # q k^T and softmax(.) v
    assert n == 2 * (projections + scores_and_mix)  # batch of 2


@pytest.mark.parametrize("name", ["walt", "videovae-plus"])
def test_models_table_and_bench_count_the_same(name):
    """The Models table (encoder_decoder_stats) and the bench (model_flops) use the one counter. VideoVAE+'s
    caption path runs on meta; W.A.L.T's attention and 3D convolutions are counted (a CPU count missed them)."""
    config = models.training_record(name).get("config")
    t = smallest_clip_frames(models.model_class(name).card.frame_rule)
    enc, dec = model_flops(name, config, (1, 3, t, 64, 64))
    st = encoder_decoder_stats(name, 64)
    assert st["encoder_gflops"] == pytest.approx(enc / t / 1e9) and st["decoder_gflops"] == pytest.approx(dec / t / 1e9)
    assert enc > 0 and dec > 0
    # every multiply-add of the model's own Linear layers and convolutions is in the total, so the total is at
    # least their analytic sum (attention score matmuls come on top)
    floor = _module_floor(name, config, (1, 3, t, 64, 64))
    assert enc + dec >= floor > 0


def _module_floor(name, config, shape) -> int:
    """2 x multiply-adds of every nn.Linear / nn.Conv* call in encode + decode, from forward hooks on meta."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(out, torch.Tensor):
            if isinstance(mod, torch.nn.Linear):
                total[0] += 2 * out.numel() * mod.in_features
            else:
                k = mod.weight.shape[1:].numel()  # in_channels / groups x kernel
                total[0] += 2 * out.numel() * k

    with torch.device("meta"), torch.no_grad():
        m = models.build(name, config).eval().requires_grad_(False)
        for mod in m.modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
                mod.register_forward_hook(hook)
        m.decode(m.encode(torch.empty(shape)))
    return total[0]
