"""Published checkpoints: diffusers folders, LDM/taming single files, Hugging Face repo ids, "not supported" reasons.

No network: every checkpoint is built here with the official key layout (diffusers' own ``save_pretrained``,
and the LDM layout checked against diffusers' own LDM -> diffusers converter), and repo ids resolve through a
Hugging Face cache laid out like the real one (``models--OWNER--NAME/{blobs,refs,snapshots}``) or a
monkeypatched ``hf_hub_download``.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from vaelab import hub, models
from vaelab.models import official

diffusers = pytest.importorskip("diffusers")

TINY = {"block_out_channels": (32, 64), "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 32}


def diffusers_vae(seed: int = 0, **kw) -> diffusers.AutoencoderKL:
    cfg = {**TINY, **kw}
    n = len(cfg["block_out_channels"])
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * n,
                                  up_block_types=("UpDecoderBlock2D",) * n, sample_size=32, **cfg).eval()
    with torch.no_grad():  # diffusers zero-inits nothing here, but make every tensor matter for the comparison
        for p in vae.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return vae


def assert_same_as_diffusers(ours, ref, atol: float = 1e-4) -> None:
    torch.manual_seed(1)
    x_bchw = torch.rand(2, 3, 40, 48) * 2 - 1
    with torch.no_grad():
        z_ref = ref.encode(x_bchw).latent_dist.mode()
        out_ref = ref.decode(z_ref).sample
        z = ours.encode(x_bchw.transpose(0, 1).unsqueeze(0))  # the 2 images as a 2-frame clip (1, 3, 2, H, W)
        out = ours.decode(z)
    z_bchw = z.main[0].transpose(0, 1)  # (1, C, T, h, w) -> (T, C, h, w)
    out_bchw = out[0].transpose(0, 1)
    assert (z_bchw - z_ref).abs().max() <= atol
    assert (out_bchw - out_ref).abs().max() <= atol


# --- the LDM layout, written here from the diffusers one and checked against diffusers' converter -------------

def diffusers_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL / VQ names -> CompVis LDM / taming names (the layout of single-file checkpoints)."""
    n_up = 1 + max(int(m[1]) for k in state if (m := re.match(r"decoder\.up_blocks\.(\d+)\.", k)))
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for key, v in state.items():
        new = key
        if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", key):
            new = f"encoder.down.{m[1]}.downsample.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.*)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_[qkv]|to_out\.0)\.(.*)", key):
            new = f"{m[1]}.mid.attn_1.{attn[m[2]]}.{m[3]}"
            if m[2] != "group_norm" and v.ndim == 2:
                v = v[:, :, None, None]  # CompVis stores the projections as 1x1 convs
        elif m := re.match(r"(encoder|decoder)\.conv_norm_out\.(.*)", key):
            new = f"{m[1]}.norm_out.{m[2]}"
        out[new.replace(".conv_shortcut.", ".nin_shortcut.")] = v.clone()
    return out


def test_test_side_ldm_layout_is_the_one_diffusers_converts():
    """Guards the tests below from checking our converter against itself."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    ref = diffusers_vae(block_out_channels=(32, 64, 64), layers_per_block=2)
    ldm = diffusers_to_ldm(ref.state_dict())
    assert "decoder.up.2.block.0.conv1.weight" in ldm and "encoder.mid.attn_1.q.weight" in ldm
    back = convert_ldm_vae_checkpoint({f"first_stage_model.{k}": v for k, v in ldm.items()}, dict(ref.config))
    assert set(back) == set(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(back[k], v), k


# --- sd-vae -----------------------------------------------------------------------------------------------------

def test_sd_vae_loads_a_diffusers_folder_at_its_own_config(tmp_path):
    ref = diffusers_vae(scaling_factor=0.5)
    ref.save_pretrained(tmp_path / "vae")
    assert (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    ours = models.load("sd-vae", weights=str(tmp_path / "vae"), device="cpu")
    assert ours.config["block_out_channels"] == (32, 64) and ours.config["norm_num_groups"] == 32
    assert ours.config["scaling_factor"] == 0.5
    assert ours.card.spatial_factor == 2, "the card follows the checkpoint (2 levels: 2x), not the lab's 8x"
    assert models.model_class("sd-vae").card.spatial_factor == 8, "the family card is unchanged"
    assert_same_as_diffusers(ours, ref)
    x = torch.rand(1, 3, 2, 13, 11) * 2 - 1
    assert ours.reconstruct(x).shape == x.shape


def test_sd_vae_folder_with_legacy_attention_names(tmp_path):
    from safetensors.torch import load_file, save_file

    ref = diffusers_vae(seed=3)
    ref.save_pretrained(tmp_path / "vae")
    path = tmp_path / "vae" / "diffusion_pytorch_model.safetensors"
    legacy = {}
    for k, v in load_file(str(path)).items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
            k = k.replace(f"attentions.0.{new}.", f"attentions.0.{old}.")
        legacy[k] = v
    assert any(".proj_attn." in k for k in legacy)
    save_file(legacy, str(path))
    assert_same_as_diffusers(models.load("sd-vae", weights=str(tmp_path / "vae"), device="cpu"), ref)


@pytest.mark.parametrize("fmt", ["safetensors", "ckpt"])
def test_sd_vae_loads_an_ldm_single_file_inside_a_full_sd_checkpoint(tmp_path, fmt):
    from safetensors.torch import save_file

    ref = diffusers_vae(seed=4, block_out_channels=(32, 64, 64), layers_per_block=2)
    full = {f"first_stage_model.{k}": v for k, v in diffusers_to_ldm(ref.state_dict()).items()}
    full["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(8, 4, 3, 3)  # the UNet of a full checkpoint
    full["first_stage_model.loss.logvar"] = torch.zeros(())  # Lightning training-only key
    path = tmp_path / f"sd.{fmt}"
    if fmt == "safetensors":
        save_file(full, str(path))
    else:
        torch.save({"state_dict": full}, path)  # plain tensors: readable with weights_only=True
    ours = models.load("sd-vae", weights=str(path), device="cpu")
    assert ours.config["block_out_channels"] == (32, 64, 64) and ours.config["layers_per_block"] == 2
    assert any("LDM" in n for n in ours.weights_notes)
    assert_same_as_diffusers(ours, ref)


def test_real_sd_architecture_gets_the_real_sd_config():
    """An LDM file with the real SD shapes builds SD_CONFIG (32 groups, scaling 0.18215), not the lab config.
    Shapes only (meta tensors): the 84 M-parameter model is never allocated."""
    from vaelab.models.sd_vae import SD_CONFIG, SDVAEConfig

    with torch.device("meta"):
        state = models.build("sd-vae", SD_CONFIG).state_dict()
    assert sum(v.numel() for v in state.values()) == 83_653_863  # the published sd-vae-ft-mse count
    _, config, notes = official.convert_checkpoint("sd-vae", diffusers_to_ldm(state), None, SDVAEConfig().to_dict())
    assert config == SD_CONFIG
    assert any("real Stable Diffusion" in n for n in notes)
    # and the published config.json (stabilityai/sd-vae-ft-mse) maps onto the same model
    published = {"_class_name": "AutoencoderKL", "_diffusers_version": "0.4.2", "act_fn": "silu",
                 "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
                 "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
                 "out_channels": 3, "sample_size": 256, "up_block_types": ["UpDecoderBlock2D"] * 4}
    ours, _ = official.sd_config_from_diffusers(published)
    assert "kl_weight" not in ours and SDVAEConfig.from_dict(ours) == SD_CONFIG


def test_our_own_bare_state_dict_keeps_the_lab_config(tmp_path):
    """Backwards compatible: a file without VAE Lab metadata whose shapes are the lab config's builds the lab config."""
    from safetensors.torch import save_file

    src = models.build("sd-vae")
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "bare.safetensors"))
    m = models.load("sd-vae", weights=str(tmp_path / "bare.safetensors"), device="cpu")
    assert m.config["norm_num_groups"] == src.config["norm_num_groups"] != 32
    for k, v in src.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k


def test_sd_vae_without_quant_convs_loads_with_identity_convs(tmp_path):
    """SD3 / FLUX-style AutoencoderKL (use_quant_conv=False): exact, with 16 latent channels on the card."""
    ref = diffusers_vae(seed=5, latent_channels=16, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.1, scaling_factor=1.5)
    assert "quant_conv.weight" not in ref.state_dict()
    ref.save_pretrained(tmp_path / "vae")
    ours = models.load("sd-vae", weights=str(tmp_path / "vae"), device="cpu")
    assert ours.card.latent_channels == 16 and ours.config["shift_factor"] == 0.1
    assert_same_as_diffusers(ours, ref)


def test_unsupported_autoencoderkl_config_says_why(tmp_path):
    diffusers_vae(mid_block_add_attention=False).save_pretrained(tmp_path / "vae")
    with pytest.raises(models.WeightsError, match="not supported because .*mid_block_add_attention"):
        models.load("sd-vae", weights=str(tmp_path / "vae"), device="cpu")


def test_video_vae_folder_given_to_sd_vae_points_to_the_adapters(tmp_path):
    (tmp_path / "wan").mkdir()
    (tmp_path / "wan" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLWan"}))
    (tmp_path / "wan" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(models.WeightsError, match="AutoencoderKLWan.*register_extra"):
        models.load("sd-vae", weights=str(tmp_path / "wan"), device="cpu")


def test_pickled_folder_weights_are_read_with_weights_only(tmp_path):
    ref = diffusers_vae(seed=6)
    ref.save_pretrained(tmp_path / "vae", safe_serialization=False)
    assert (tmp_path / "vae" / "diffusion_pytorch_model.bin").is_file()
    assert_same_as_diffusers(models.load("sd-vae", weights=str(tmp_path / "vae"), device="cpu"), ref)

    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "PWNED",))

    torch.save({"encoder.conv_in.weight": Boom()}, tmp_path / "vae" / "diffusion_pytorch_model.bin")
    with pytest.raises(models.WeightsError, match="refused|could not read"):
        models.load("sd-vae", weights=str(tmp_path / "vae"), device="cpu")
    assert not (tmp_path / "PWNED").exists()


# --- vqgan (taming layout) ----------------------------------------------------------------------------------------

VQ_TAMING = {"block_out_channels": [32, 64, 64], "layers_per_block": 1, "norm_num_groups": 32, "z_channels": 32,
             "embed_dim": 16, "n_embed": 64}


def test_vqgan_loads_a_taming_lightning_checkpoint(tmp_path):
    torch.manual_seed(7)
    src = models.build("vqgan", VQ_TAMING).eval()
    state = diffusers_to_ldm(src.state_dict())
    assert "quantize.embedding.weight" in state and "decoder.up.0.block.0.conv1.weight" in state
    state["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 4, 4)  # taming's last.ckpt carries the GAN loss
    torch.save({"state_dict": state}, tmp_path / "last.ckpt")
    ours = models.load("vqgan", weights=str(tmp_path / "last.ckpt"), device="cpu")
    assert ours.config["n_embed"] == 64 and ours.config["embed_dim"] == 16
    assert ours.card.spatial_factor == 4 and ours.card.latent_channels == 16
    x = torch.rand(1, 3, 2, 20, 28) * 2 - 1
    with torch.no_grad():
        assert torch.equal(ours.encode_indices(x), src.encode_indices(x))
        assert torch.allclose(ours.decode(ours.encode(x)), src.decode(src.encode(x)), atol=1e-6)
        z = ours.encode(x)
        assert ours.reconstruct(x).shape == x.shape
    # the instance card follows the checkpoint (4x: 20 x 28 needs no padding), the family card stays 8x
    assert tuple(z.main.shape[1:]) == ours.card.latent_shape(2, 20, 28) == (16, 2, 5, 7)
    assert models.model_class("vqgan").card.spatial_factor == 8


def test_vqgan_with_incomplete_in_level_attention_gets_a_one_line_error(tmp_path):
    """In-level attention loads now (tests/test_released_vqgan.py); a checkpoint with a stray piece of one does not."""
    from safetensors.torch import save_file

    state = diffusers_to_ldm(models.build("vqgan", VQ_TAMING).state_dict())
    state["encoder.down.2.attn.0.q.weight"] = torch.zeros(64, 64, 1, 1)  # attn_resolutions=[16] in taming configs
    save_file(state, str(tmp_path / "vqgan_imagenet_f16.safetensors"))
    with pytest.raises(models.WeightsError, match="in-level attention at encoder levels"):
        models.load("vqgan", weights=str(tmp_path / "vqgan_imagenet_f16.safetensors"), device="cpu")


# --- the other families -----------------------------------------------------------------------------------------

def test_every_family_states_its_official_checkpoint_support():
    for name in models.all_names():
        s = official.support(name)
        assert s is not None, name
        assert s.status in ("supported", "layout only", "not supported") and s.detail and s.published
        assert "Official checkpoints:" in models.card(name).weights


@pytest.mark.parametrize("name", [n for n, s in official.SUPPORT.items() if s.status == "not supported"])
def test_not_supported_families_raise_the_reason(tmp_path, name):
    from safetensors.torch import save_file

    save_file({"encoder.blocks.0.attn.qkv.weight": torch.zeros(4, 4)}, str(tmp_path / "official.safetensors"))
    with pytest.raises(models.WeightsError, match=f"official {name} checkpoints are not supported because"):
        models.load(name, weights=str(tmp_path / "official.safetensors"), device="cpu")


# --- Hugging Face repo ids ---------------------------------------------------------------------------------------

def fake_hub_cache(cache: Path, repo_id: str, files: dict[str, Path], revision: str = "main") -> str:
    """Lay files out as huggingface_hub's cache does: blobs by hash, snapshots/<commit>/<path> symlinks, refs/<rev>."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    for rel, src in files.items():
        data = Path(src).read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo_dir / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (len(Path(rel).parts) + 1)) / "blobs" / blob.name)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / revision).write_text(commit)
    return commit


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_repo_id_resolves_from_the_local_cache_offline(tmp_path, offline_cache):
    from safetensors.torch import save_file

    ref = diffusers_vae(seed=8)
    ref.save_pretrained(tmp_path / "src")
    ldm = tmp_path / "ldm.safetensors"
    save_file(diffusers_to_ldm(ref.state_dict()), str(ldm))
    src = {"config.json": tmp_path / "src" / "config.json",
           "diffusion_pytorch_model.safetensors": tmp_path / "src" / "diffusion_pytorch_model.safetensors"}
    files = src | {f"vae/{k}": v for k, v in src.items()} | {"ldm.safetensors": ldm}
    fake_hub_cache(offline_cache, "acme/tiny-vae", files)

    for spec in ("acme/tiny-vae", "acme/tiny-vae:vae", "acme/tiny-vae@main:vae", "acme/tiny-vae:ldm.safetensors"):
        assert hub.is_available_offline(spec), spec
        m = models.load("sd-vae", weights=spec, device="cpu")
        assert m.weights_source == spec
        assert_same_as_diffusers(m, ref)
    assert not hub.is_available_offline("acme/other-vae")


def test_offline_and_not_cached_is_one_clear_line(offline_cache):
    with pytest.raises(models.WeightsError) as info:
        models.load("sd-vae", weights="stabilityai/sd-vae-ft-mse", device="cpu")
    msg = str(info.value)
    assert "not in the local Hugging Face cache" in msg and "HF_HUB_OFFLINE=1" in msg and "hf download" in msg
    assert "\n" not in msg


def test_online_repo_id_downloads_through_hf_hub_download(tmp_path, monkeypatch):
    """With HF_HUB_OFFLINE unset we call hf_hub_download (here a stand-in serving a local 'remote' folder)."""
    import huggingface_hub
    from huggingface_hub import errors

    ref = diffusers_vae(seed=9)
    ref.save_pretrained(tmp_path / "remote" / "vae")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    calls = []

    class _Response:
        headers: dict = {}
        request = None

    def fake_download(repo_id, filename, *, revision=None, cache_dir=None, local_files_only=False, **kw):
        calls.append((repo_id, filename, revision, cache_dir, local_files_only))
        src = tmp_path / "remote" / filename
        if not src.is_file():
            raise errors.RemoteEntryNotFoundError(f"404 {filename}", response=_Response())
        dst = Path(cache_dir) / "dl" / filename
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        return str(dst)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    m = models.load("sd-vae", weights="acme/tiny@v1:vae", device="cpu")
    assert_same_as_diffusers(m, ref)
    assert ("acme/tiny", "vae/config.json", "v1", str(tmp_path / "cache"), False) in calls
    assert [c[1] for c in calls] == ["vae/config.json", "vae/diffusion_pytorch_model.safetensors.index.json",
                                     "vae/diffusion_pytorch_model.safetensors"], "safetensors before any pickle"


def test_weights_spec_parsing():
    assert hub.parse_repo_spec("stabilityai/sd-vae-ft-mse") == hub.RepoSpec("stabilityai/sd-vae-ft-mse", None, "")
    s = hub.parse_repo_spec("Wan-AI/Wan2.1-T2V-1.3B-Diffusers@abc123:vae")
    assert (s.repo_id, s.revision, s.path, s.is_file) == ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "abc123", "vae", False)
    assert hub.parse_repo_spec("a/b:vae-ft-mse-840000-ema-pruned.safetensors").is_file
    for not_repo in ("/abs/path", "weights/sd.safetensors", "a/b/c", "../x/y", "a/b:../../etc/passwd", "name"):
        assert hub.parse_repo_spec(not_repo) is None, not_repo
    with pytest.raises(models.WeightsError, match="not a local file or folder"):
        hub.resolve("no-such-file.safetensors")
