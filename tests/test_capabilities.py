"""Capabilities on the model: callers ask what a model can do, never which family it is."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from vaelab import models, pipeline

PKG = Path(__file__).resolve().parents[1] / "vaelab"

EXPECTED = {  # the lab families' capabilities, as their papers describe them
    "streams_causally": {"iv-vae", "walt"},
    "quantised": {"vqgan"},
    "parent": {"cv-vae"},
    "latent_branches": {"iv-vae"},
    "latent_parts": {"vidtwin"},
    "reads_captions": {"videovae-plus"},
}


@pytest.fixture(scope="module")
def built():
    return {name: models.build(name) for name in models.all_names()}


@pytest.mark.parametrize("capability", sorted(EXPECTED))
def test_each_capability_belongs_to_its_families(built, capability):
    have = {name for name, m in built.items() if getattr(m, capability)}
    assert have == EXPECTED[capability]


def test_capability_values(built):
    assert built["cv-vae"].parent == "sd-vae"
    assert built["iv-vae"].latent_branches == ("keyframe", "temporal")
    assert built["vidtwin"].latent_parts == ("structure", "dynamics_h", "dynamics_w")
    with pytest.raises(ValueError, match="no latent branches"):
        built["sd-vae"].zero_branch(None, "keyframe")
    with pytest.raises(NotImplementedError):
        built["sd-vae"].start_from(built["vqgan"])


def test_family_diagnostics_through_one_hook():
    clip = np.random.default_rng(0).integers(0, 256, (9, 32, 48, 3), dtype=np.uint8)
    vq = pipeline.family_diagnostics(pipeline.get_model("vqgan", "lab", "cpu"), clip, "cpu")
    assert set(vq) == {"codebook"} and vq["codebook"]["frames"] == 9 and vq["codebook"]["used"] >= 1
    cv = pipeline.family_diagnostics(pipeline.get_model("cv-vae", "lab", "cpu"), clip, "cpu")
    comp = cv["compatibility"]
    assert comp["image_model"] == "sd-vae" and comp["method"] == "cv-vae compatibility_psnr"
    assert 5 < comp["psnr"] < 60 and comp["frames"] == [0, 4, 8]
    assert pipeline.family_diagnostics(pipeline.get_model("sd-vae", "lab", "cpu"), clip, "cpu") == {}


def test_no_attribute_probing_of_models_outside_models():
    """`hasattr(model, ...)` / `hasattr(card, ...)` outside vaelab/models: ask a capability instead."""
    bad = []
    for path in PKG.rglob("*.py"):
        if "models" in path.relative_to(PKG).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr" and node.args
                    and isinstance(node.args[0], ast.Name)
                    and any(k in node.args[0].id for k in ("model", "card", "vae"))):
                bad.append(f"{path.relative_to(PKG)}:{node.lineno}")
    assert not bad, bad
