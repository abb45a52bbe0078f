"""Training losses shared by every family.

Reconstruction = L1 + a wavelet high-frequency L1 (LiteVAE's wavelet loss: errors in the
LH/HL/HH Haar bands, i.e. edges and texture, which a plain L1 under-weights). The model adds
its own regulariser (KL, VQ, ...). A PatchGAN (taming's NLayerDiscriminator, hinge loss,
adaptive weight) is available but off by default: on CPU budgets it mostly adds noise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.layout import fold_time
from ..models.wavelets import dwt2_multilevel


def wavelet_l1(x_bcthw: torch.Tensor, y_bcthw: torch.Tensor, levels: int = 2) -> torch.Tensor:
    """Mean L1 over the high bands of a ``levels``-level 2D Haar transform of every frame."""
    xs = dwt2_multilevel(fold_time(x_bcthw), levels)
    ys = dwt2_multilevel(fold_time(y_bcthw), levels)
    terms = [F.l1_loss(bx[k], by[k]) for bx, by in zip(xs, ys) for k in ("LH", "HL", "HH")]
    return torch.stack(terms).mean()


def reconstruction_loss(x: torch.Tensor, recon: torch.Tensor, wavelet_weight: float = 0.5) -> dict[str, torch.Tensor]:
    return {"l1": F.l1_loss(recon, x), "wavelet": wavelet_weight * wavelet_l1(x, recon)}


class PatchDiscriminator(nn.Module):
    """taming's NLayerDiscriminator (PatchGAN) on frames: (N, 3, H, W) -> (N, 1, h, w) logits."""

    def __init__(self, ndf: int = 32, n_layers: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False), nn.BatchNorm2d(ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def adaptive_gan_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """taming: ||grad rec|| / (||grad G|| + 1e-4) at the decoder's last layer, clamped to [0, 1e4]."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach()
