"""Weights in the Hugging Face Hub layout: resolution, sha256 verification, push.

A zoo repo holds ``config.json`` + ``model.safetensors`` + ``README.md`` (model card). Resolution order:

1. an explicit local directory with that layout;
2. a local mirror: ``<mirror>/<repo_id>/`` where mirror is the ``mirror=`` argument, the directories
   in ``$ZOO_HUB_MIRROR`` (os.pathsep-separated), then the repo's bundled ``hub_mirror/``;
3. the Hub through ``huggingface_hub.hf_hub_download`` (HF cache, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``)
   at a pinned revision.

huggingface_hub only checks sizes, so every pinned file is checked against its sha256 here; a
mismatching file is removed from the HF cache before the error is raised.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError

from .errors import WeightsIntegrityError, WeightsNotFoundError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
REPO_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
MIRROR_ENV = "ZOO_HUB_MIRROR"
BUNDLED_MIRROR = Path(__file__).resolve().parent.parent / "hub_mirror"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mirror_roots(mirror: str | os.PathLike | None = None) -> list[Path]:
    """The mirror directories searched, in order."""
    roots = [Path(mirror)] if mirror else []
    roots += [Path(p) for p in os.environ.get(MIRROR_ENV, "").split(os.pathsep) if p]
    if BUNDLED_MIRROR.is_dir():
        roots.append(BUNDLED_MIRROR)
    return roots


def _verify(folder: Path, sha256: dict[str, str] | None, purge: bool) -> None:
    for filename, expected in (sha256 or {}).items():
        path = folder / filename
        actual = sha256_file(path)
        if actual != expected:
            if purge:  # a cached Hub file: remove the snapshot link and the blob it points to
                blob = Path(os.path.realpath(path))
                path.unlink(missing_ok=True)
                blob.unlink(missing_ok=True)
            raise WeightsIntegrityError(
                f"sha256 mismatch for {path}: expected {expected}, got {actual}. "
                + ("The corrupt file was removed from the cache; retry the download." if purge
                   else "The file is corrupted or not the pinned version.")
            )


def _purge_incomplete(cache_dir: str | None, repo_id: str) -> None:
    """Remove partial downloads (``*.incomplete``) of this repo from the HF cache."""
    from huggingface_hub import constants

    root = Path(cache_dir or constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "blobs"
    for partial in root.glob("*.incomplete"):
        partial.unlink(missing_ok=True)


def resolve_pretrained(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    sha256: dict[str, str] | None = None,
    mirror: str | os.PathLike | None = None,
    cache_dir: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """Return a local folder holding config.json, model.safetensors (and README.md when present)."""
    local = Path(name_or_path)
    if (local / CONFIG_NAME).is_file():
        _verify(local, sha256, purge=False)
        return local
    repo_id = str(name_or_path)
    looked = [str(local)]
    for root in mirror_roots(mirror):
        candidate = root / repo_id
        looked.append(str(candidate))
        if (candidate / CONFIG_NAME).is_file():
            _verify(candidate, sha256, purge=False)
            return candidate
    folder = None
    try:
        for filename in REPO_FILES:
            try:
                path = hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir, token=token)
            except EntryNotFoundError:
                if filename == CARD_NAME:  # a repo without a card still loads
                    continue
                raise
            folder = Path(path).parent
    except Exception as err:  # network down, offline mode, 404, truncated transfer, ...
        _purge_incomplete(cache_dir, repo_id)
        raise WeightsNotFoundError(
            f"could not get weights {repo_id!r} (revision {revision or 'main'}): not a local folder, not in a "
            f"mirror (looked in {looked}), and the Hub download failed: {type(err).__name__}: {err}. "
            f"Set ${MIRROR_ENV} to a folder holding <repo_id>/{{{', '.join(REPO_FILES)}}} to work offline."
        ) from err
    _verify(folder, sha256, purge=True)
    return folder


def push_folder_to_hub(
    folder: str | os.PathLike, repo_id: str, *, token: str | None = None, private: bool | None = None,
    revision: str | None = None, commit_message: str = "Upload ebm-zoo model",
) -> str:
    """Create ``repo_id`` if needed and upload the three repo files; returns the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, revision=revision, commit_message=commit_message,
        allow_patterns=list(REPO_FILES),
    )
    return str(info)
