"""Checkpoint files: where the lab weights live, reading any checkpoint safely, strict loading, saving.

Lab weights live in ``ASSETS/weights/<name>.safetensors`` (fp16, the model's config as JSON in the
safetensors metadata, read back through ``metadata.checked_config``) next to ``<name>.json`` (training recipe
and measured held-out numbers). Only safetensors or ``torch.load(weights_only=True)`` are ever used to read a
checkpoint. Nothing here knows the families: the registry (``registry``/``families``) does.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from .base import VAE, WeightsError
from .config import config_dict

ASSETS = Path(os.environ.get("VAELAB_ASSETS") or Path(__file__).resolve().parents[2] / "assets")


def use_assets(path: str | Path) -> None:
    """Read lab weights and training records from ``path``/weights from now on (batch workers, tests)."""
    global ASSETS
    ASSETS = Path(path)


def lab_weights_path(name: str) -> Path:
    return ASSETS / "weights" / f"{name}.safetensors"


def parent_weights_path(name: str) -> Path:
    """The weights of the parent model (``VAE.parent``) that ``name``'s shipped lab weights were trained against,
    kept beside them when the parent's own shipped weights have since been retrained (CV-VAE's latent space is
    that of the exact image VAE it was inflated from and regularised by; a newer sd-vae cannot read it)."""
    return ASSETS / "weights" / f"{name}.parent.safetensors"


def training_record(name: str) -> dict[str, Any]:
    path = ASSETS / "weights" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


# --- Lightning checkpoints ----------------------------------------------------------------------------

# PyTorch Lightning < 1.5 (taming's 1.0.8, LDM's) keyed ``checkpoint["callbacks"]`` by the callback *class*, so
# a released ``last.ckpt`` references e.g. pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint, which
# ``weights_only`` refuses. Those names (and only those) are allowed as inert placeholder classes: nothing of
# Lightning is imported or run, and only ``state_dict`` is used.
_LIGHTNING = ("pytorch_lightning.", "lightning.", "lightning_fabric.")


def _placeholder(qualified: str) -> type:
    module, _, name = qualified.rpartition(".")
    return type(name, (), {"__module__": module, "__qualname__": name})


def torch_load_tensors(path: str | Any) -> Any:
    """``torch.load(weights_only=True)``, allowing Lightning's class-keyed callback states as placeholders."""
    allowed: list[tuple[type, str]] = []
    while True:
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # re-raised unless it is a Lightning class reference
            found = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
            name = found.group(1) if found else ""
            if not name.startswith(_LIGHTNING) or len(allowed) >= 16 or any(n == name for _, n in allowed):
                raise
            allowed.append((_placeholder(name), name))


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors (and safetensors metadata) without ever unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path.name}")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        obj = torch_load_tensors(path)  # weights_only, Lightning callback class keys as placeholders
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure is the user's file, not our bug
        text = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(e).split()))  # one line, no ANSI colours
        if "Weights only load failed" in text:  # torch's text is long and explains how to turn the safety off
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            what = f"it references {found.group(1)}, not only tensors" if found else "not a plain tensor checkpoint"
            raise WeightsError(f"refused checkpoint {path.name}: {what} (nothing was executed); "
                               "use a .safetensors file") from None
        raise WeightsError(f"could not read checkpoint {path.name}: {type(e).__name__}: {text[:200]}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path.name} is not a state dict of tensors")
    return obj, {}


def load_weights(model: VAE, state: dict[str, torch.Tensor]) -> None:
    """Strict load with a one-line message on mismatch, refusing NaN/Inf."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsError(f"checkpoint has NaN/Inf values in {len(bad)} tensor(s), e.g. {bad[0]}")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatch(es), e.g. {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise WeightsError(f"checkpoint does not fit {model.card.name}: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def save_weights(model: VAE, path: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """fp16 safetensors with the config in the metadata (what ``load`` reads back)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(config_dict(model.config)), "vaelab_model": model.card.name})
    return path


__all__ = ["ASSETS", "WeightsError", "lab_weights_path", "parent_weights_path", "load_weights", "read_checkpoint", "save_weights",
           "torch_load_tensors", "training_record", "use_assets"]
