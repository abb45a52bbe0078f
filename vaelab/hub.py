"""Where weights come from: a local file, a local diffusers folder, or a Hugging Face repo id.

A weights spec is one of

* a path to a file (``.safetensors``; ``.ckpt`` / ``.pt`` / ``.pth`` / ``.bin`` are read with
  ``torch.load(weights_only=True)`` only);
* a path to a diffusers folder: ``config.json`` next to ``diffusion_pytorch_model.safetensors`` (or its
  sharded ``.safetensors.index.json``, or, last, ``diffusion_pytorch_model.bin``);
* a Hugging Face repo id ``OWNER/NAME[@REVISION][:PATH]``. ``PATH`` names a file inside the repo when it
  ends in a weights suffix (``stabilityai/sd-vae-ft-mse-original:vae-ft-mse-840000-ema-pruned.safetensors``)
  and a diffusers sub-folder otherwise (``Wan-AI/Wan2.1-T2V-1.3B-Diffusers:vae``); without it the repo root
  is the diffusers folder (``stabilityai/sd-vae-ft-mse``).

Repo files go through ``huggingface_hub.hf_hub_download`` into the ordinary Hugging Face cache
(``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``), so a file downloaded once is
reused, and ``HF_HUB_OFFLINE=1`` (read on every call, not only at import) never touches the network: a
file that is not cached then ends in a one-line :class:`~vaelab.models.WeightsError` that says how to get it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .models.base import WeightsError

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
CONFIG = "config.json"
# preference order inside a diffusers folder: safetensors first, a pickle only when nothing else is there
SAFETENSORS = "diffusion_pytorch_model.safetensors"
SAFETENSORS_INDEX = "diffusion_pytorch_model.safetensors.index.json"
PICKLE = "diffusion_pytorch_model.bin"

_REPO_SPEC = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+?))?(?::(?P<path>[\w./ -]+))?$")


@dataclass(frozen=True)
class RepoSpec:
    repo_id: str
    revision: str | None
    path: str  # "" = repo root; a file when it ends in a weights suffix, else a sub-folder

    @property
    def is_file(self) -> bool:
        return self.path.endswith(WEIGHT_SUFFIXES)


@dataclass
class Resolved:
    """Local files for one weights spec. ``kind`` is "file" or "folder" (a diffusers folder)."""

    kind: str
    weight_files: list[Path]
    source: str  # the spec as the user wrote it (for messages and ``model.weights_source``)
    config: dict[str, Any] | None = None  # config.json of a folder
    folder: Path | None = None
    notes: list[str] = field(default_factory=list)


def offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it, but looked up now (tests and apps set it late)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def cache_dir() -> Path:
    """The Hugging Face hub cache this process uses: HF_HUB_CACHE, else HF_HOME/hub, else the library default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def parse_repo_spec(spec: str) -> RepoSpec | None:
    """``OWNER/NAME[@REVISION][:PATH]`` -> RepoSpec, or None when ``spec`` does not look like a repo id."""
    m = _REPO_SPEC.match(str(spec).strip())
    if m is None or ".." in m.group("repo") or m.group("repo").endswith(WEIGHT_SUFFIXES):
        return None  # "dir/model.safetensors" is a (missing) local file, not a repo
    path = (m.group("path") or "").strip("/")
    if ".." in path.split("/"):
        return None
    return RepoSpec(m.group("repo"), m.group("rev"), path)


def resolve(spec: str | Path) -> Resolved:
    """Local file(s) and config for a weights spec, downloading repo files unless offline (see module doc)."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file():
        return Resolved("file", [path], text)
    if path.is_dir():
        return read_folder(path, text)
    repo = parse_repo_spec(text)
    if repo is None:
        raise WeightsError(f"weights {_short(text)!r} not found: not a local file or folder, nor a Hugging Face "
                           "repo id (OWNER/NAME[@REVISION][:SUBFOLDER or FILE])")
    return _fetch(repo, text)


def is_available_offline(spec: str | Path) -> bool:
    """True when ``spec`` resolves without the network: a local path, or repo files already in the cache."""
    path = Path(str(spec)).expanduser()
    if path.is_file():
        return True
    if path.is_dir():
        try:
            read_folder(path, str(spec))
        except WeightsError:
            return False
        return True
    repo = parse_repo_spec(str(spec))
    if repo is None:
        return False
    if repo.is_file:
        return _cached(repo, repo.path) is not None
    return _cached(repo, _in(repo, CONFIG)) is not None and any(
        _cached(repo, _in(repo, f)) is not None for f in (SAFETENSORS_INDEX, SAFETENSORS, PICKLE))


def read_folder(folder: Path, source: str) -> Resolved:
    """A local diffusers folder: its config.json and weight file(s), safetensors preferred."""
    cfg_path = folder / CONFIG
    if not cfg_path.is_file():
        raise WeightsError(f"checkpoint not found: {folder.name} is a folder without {CONFIG} "
                           f"(a diffusers folder holds {CONFIG} and {SAFETENSORS})")
    config = _read_json(cfg_path)
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        files = [folder / f for f in _shards(_read_json(index), index.name)]
    elif (folder / SAFETENSORS).is_file():
        files = [folder / SAFETENSORS]
    elif (folder / PICKLE).is_file():
        files = [folder / PICKLE]
    else:
        raise WeightsError(f"{folder.name}/ has {CONFIG} but no {SAFETENSORS} (nor {PICKLE})")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise WeightsError(f"{folder.name}/: shard {missing[0]} listed in {SAFETENSORS_INDEX} is missing")
    return Resolved("folder", files, source, config=config, folder=folder)


# --- Hugging Face hub ---------------------------------------------------------------------------

def _in(repo: RepoSpec, name: str) -> str:
    return f"{repo.path}/{name}" if repo.path else name


def _cached(repo: RepoSpec, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo.repo_id, filename, cache_dir=str(cache_dir()), revision=repo.revision)
    return Path(found) if isinstance(found, str) else None


def _download(repo: RepoSpec, filename: str, source: str) -> Path:
    """One repo file from the cache, or from the Hub when online; one-line WeightsError otherwise."""
    from huggingface_hub import errors, hf_hub_download

    try:
        return Path(hf_hub_download(repo.repo_id, filename, revision=repo.revision, cache_dir=str(cache_dir()),
                                    local_files_only=offline()))
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled):
        why = "HF_HUB_OFFLINE=1" if offline() else "the Hugging Face Hub could not be reached"
        raise WeightsError(
            f"{repo.repo_id}: {filename} is not in the local Hugging Face cache ({cache_dir()}) and {why}; "
            f"download it once where there is internet (`hf download {repo.repo_id} {filename}`) "
            "and copy the cache, or point HF_HUB_CACHE at a cache that has it") from None
    except errors.GatedRepoError:
        raise WeightsError(f"{repo.repo_id} is gated: accept its licence on the Hub and log in "
                           "(`hf auth login`) first") from None
    except errors.RepositoryNotFoundError:
        raise WeightsError(f"no Hugging Face repo {repo.repo_id!r} (or it is private)") from None
    except errors.RevisionNotFoundError:
        raise WeightsError(f"{repo.repo_id} has no revision {repo.revision!r}") from None
    except errors.EntryNotFoundError:
        raise _NotInRepo(filename) from None
    except errors.HfHubHTTPError as e:
        raise WeightsError(f"{repo.repo_id}: download of {filename} failed: {_short(str(e))}") from None


class _NotInRepo(WeightsError):
    """A file the repo does not have (we then try the next candidate)."""


def _fetch(repo: RepoSpec, source: str) -> Resolved:
    if repo.is_file:
        try:
            return Resolved("file", [_download(repo, repo.path, source)], source)
        except _NotInRepo:
            raise WeightsError(f"{repo.repo_id} has no file {repo.path}") from None
    try:
        config = _read_json(_download(repo, _in(repo, CONFIG), source))
    except _NotInRepo:
        where = f"sub-folder {repo.path}/" if repo.path else "its root"
        raise WeightsError(f"{repo.repo_id} has no {CONFIG} in {where}: not a diffusers folder "
                           "(name a file with OWNER/NAME:FILE)") from None
    for name in (SAFETENSORS_INDEX, SAFETENSORS, PICKLE):
        if offline() and _cached(repo, _in(repo, name)) is None:
            continue  # offline, a missing candidate is "not cached", not "not in the repo": try the next
        try:
            first = _download(repo, _in(repo, name), source)
        except _NotInRepo:
            continue
        if name == SAFETENSORS_INDEX:
            files = [_download(repo, _in(repo, f), source) for f in _shards(_read_json(first), name)]
        else:
            files = [first]
        return Resolved("folder", files, source, config=config, folder=first.parent)
    raise WeightsError(f"{repo.repo_id}{':' + repo.path if repo.path else ''}: no {SAFETENSORS} "
                       f"(nor {PICKLE}) {'in the local cache (HF_HUB_OFFLINE=1)' if offline() else 'in the repo'}")


# --- helpers --------------------------------------------------------------------------------------

def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise WeightsError(f"could not read {Path(path).name}: {type(e).__name__}") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{Path(path).name} is not a JSON object")
    return obj


def _shards(index: dict[str, Any], name: str) -> list[str]:
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise WeightsError(f"{name} has no weight_map")
    files = sorted(set(weight_map.values()))
    if any(not isinstance(f, str) or "/" in f or f.startswith(".") or not f.endswith(".safetensors") for f in files):
        raise WeightsError(f"{name} lists a shard that is not a plain .safetensors file name")
    return files


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."
