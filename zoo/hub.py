"""Weights in the Hugging Face Hub layout: resolution, sha256 verification, save/load/push, timeouts.

A zoo repo holds ``config.json`` (sha-pinned with the weights), ``sampler_config.json`` (sampler default and
presets: not pinned, so tuning a preset never changes a pinned file), ``model.safetensors``, ``README.md`` and
``eval_results.json`` (``zoo eval``'s numbers: not pinned either).
Resolution order:

1. an explicit local directory with that layout;
2. a local mirror ``<mirror>/<repo_id>/`` (the ``mirror=`` argument, the folders in ``$ZOO_HUB_MIRROR``, then the
   repo's bundled ``hub_mirror/``). A mirror holds one revision: the entry's pinned one. Any other ``revision=``
   skips the mirrors and asks the Hub;
3. the Hub through ``huggingface_hub.hf_hub_download`` (HF cache, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``).

huggingface_hub only checks sizes, so pinned files are checked against their sha256 here; a mismatching or
unreadable file is removed from the HF cache before the error is raised. Every Hub call (a repo's download, a push)
is bounded as a whole, retries included: ``$ZOO_HUB_TIMEOUT`` seconds, default 60.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

import torch
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import close_session, set_client_factory, validate_repo_id

from .errors import ConfigError, HubError, InputError, WeightsIntegrityError, WeightsNotFoundError
from .schema import SamplerSpec, build, parse_model_config, read_json

CONFIG_NAME = "config.json"
SAMPLER_CONFIG_NAME = "sampler_config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
EVAL_NAME = "eval_results.json"  # zoo eval's measured numbers (zoo.results), not pinned
REPO_FILES = (CONFIG_NAME, SAMPLER_CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, EVAL_NAME)
OPTIONAL_FILES = (SAMPLER_CONFIG_NAME, CARD_NAME, EVAL_NAME)
ASSETS = "assets/*"  # the card's images, linked relative to the card
MIRROR_ENV = "ZOO_HUB_MIRROR"
TIMEOUT_ENV = "ZOO_HUB_TIMEOUT"
BUNDLED_MIRROR = Path(__file__).resolve().parent.parent / "hub_mirror"


# ---------------------------------------------------------------------------- timeouts
def hub_timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "60")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"${TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"${TIMEOUT_ENV} must be > 0 seconds, got {raw!r}")
    return value


def bounded_hub_call(fn, what: str):
    """``fn(seconds)`` with the whole call bounded by ``$ZOO_HUB_TIMEOUT`` seconds, huggingface_hub's own retries
    included: every socket read of its shared httpx client times out by then (via its ``set_client_factory``), and
    the call runs in a worker thread that is abandoned, its connections closed, when the deadline passes."""
    from huggingface_hub.utils import _http

    seconds = hub_timeout()

    def factory():
        client = _http.default_client_factory()
        client.timeout = seconds
        return client

    outcome: dict = {}

    def work():
        try:
            outcome["value"] = fn(seconds)
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    set_client_factory(factory)
    close_session()
    worker = threading.Thread(target=work, daemon=True, name=f"zoo hub call: {what}")
    try:
        worker.start()
        worker.join(seconds)
        if worker.is_alive():
            raise TimeoutError(f"{what} did not finish within ${TIMEOUT_ENV}={seconds:g} s (the whole call: "
                               f"connection, retries and transfer; raise ${TIMEOUT_ENV} for a slow connection)")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]
    finally:
        set_client_factory(_http.default_client_factory)
        close_session()


# ---------------------------------------------------------------------------- resolution
def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_repo_id(repo_id: str) -> str:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ConfigError(f"{repo_id!r} is neither a local folder with {CONFIG_NAME} nor a valid Hub repo id: {err}") from None
    return repo_id


def mirror_roots(mirror: str | os.PathLike | None = None) -> list[Path]:
    """The mirror directories searched, in order."""
    roots = [Path(mirror)] if mirror else []
    roots += [Path(p) for p in os.environ.get(MIRROR_ENV, "").split(os.pathsep) if p]
    if BUNDLED_MIRROR.is_dir():
        roots.append(BUNDLED_MIRROR)
    return roots


def bundled_folder(entry) -> Path:
    """The bundled mirror's folder of an entry's weights (``ebm-zoo/<entry>`` until the entry names its repo)."""
    return BUNDLED_MIRROR / (entry.weights.repo_id if entry.weights else f"ebm-zoo/{entry.name}")


def purge_cached(path: Path) -> None:
    """Remove a file of the HF cache: the snapshot link and the blob it points to."""
    blob = Path(os.path.realpath(path))
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def _verify(folder: Path, sha256: dict[str, str] | None, cached: bool) -> None:
    for filename, expected in (sha256 or {}).items():
        path = folder / filename
        actual = sha256_file(path)
        if actual != expected:
            if cached:
                purge_cached(path)
            raise WeightsIntegrityError(
                f"sha256 mismatch for {path}: expected {expected}, got {actual}. "
                + ("The corrupt file was removed from the cache; retry the download." if cached
                   else "The file is corrupted or not the pinned version.")
            )


def resolve_pretrained(
    name_or_path: str | os.PathLike, *, revision: str | None = None, sha256: dict[str, str] | None = None,
    mirror: str | os.PathLike | None = None, mirror_revision: str | None = None, cache_dir: str | None = None,
    token: str | bool | None = None,
) -> tuple[Path, bool]:
    """A local folder holding the repo files, and whether it lies in the HF cache.

    Mirrors are used when ``revision`` is None or equals ``mirror_revision`` (the revision the mirror holds)."""
    local = Path(name_or_path)
    if (local / CONFIG_NAME).is_file():
        _verify(local, sha256, cached=False)
        return local, False
    repo_id = check_repo_id(str(name_or_path))
    looked = [str(local)]
    if revision is None or revision == mirror_revision:
        for root in mirror_roots(mirror):
            candidate = root / repo_id
            looked.append(str(candidate))
            if (candidate / CONFIG_NAME).is_file():
                _verify(candidate, sha256, cached=False)
                return candidate, False

    def download(seconds: float) -> Path:
        # one metadata request first: a server that stopped answering fails at once, not through the retries
        get_hf_file_metadata(hf_hub_url(repo_id, CONFIG_NAME, revision=revision), token=token, timeout=seconds)
        folder = None
        for filename in REPO_FILES:
            try:
                path = hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir, token=token,
                                       etag_timeout=seconds)
            except EntryNotFoundError as err:
                # a repo without a card or sampler config still loads; but a file that could not be fetched
                # (HTTP 5xx, a timeout: huggingface_hub's LocalEntryNotFoundError) is a failure, not an absence
                if filename in OPTIONAL_FILES and not isinstance(err, LocalEntryNotFoundError):
                    continue
                raise
            folder = Path(path).parent
        return folder

    try:
        folder = bounded_hub_call(download, f"the download of {repo_id!r}")
    except Exception as err:  # network down, offline mode, 404, timeout, truncated transfer, ...
        skipped = "" if revision is None or revision == mirror_revision else f" (mirrors hold only revision {mirror_revision or 'main'}: skipped)"
        raise WeightsNotFoundError(
            f"could not get weights {repo_id!r} (revision {revision or 'main'}): not a local folder, not in a "
            f"mirror (looked in {looked}){skipped}, and the Hub download failed: {type(err).__name__}: {err}. "
            f"Set ${MIRROR_ENV} to a folder holding <repo_id>/{{{', '.join(REPO_FILES)}}} to work offline."
        ) from err
    _verify(folder, sha256, cached=True)
    return folder, True


# ---------------------------------------------------------------------------- save / load / push
def write_atomic(path: Path, write) -> None:
    """Write through a temp file in the same folder, then rename: no half-written file is ever visible."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_text(payload: dict) -> str:
    """A repo's JSON file (config.json, sampler_config.json) as the zoo writes it: sorted keys."""
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def write_json(path: Path, payload: dict) -> None:
    """``json_text`` of ``payload`` into ``path``, atomically."""
    text = json_text(payload)
    write_atomic(path, lambda p: Path(p).write_text(text))


def save_folder(model, save_directory: str | os.PathLike, *, card: str, dtype=None) -> Path:
    """config.json, sampler_config.json, model.safetensors, README.md (the ``card`` text); refuses non-finite
    weights."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", dtype if dtype and v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.net.state_dict().items()}  # integer buffers (BatchNorm's counter) keep their dtype
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise InputError(f"refusing to save non-finite weights (NaN/inf in {bad[:5]})")
    target = Path(save_directory)
    target.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "entry": str(model.config.get("entry", ""))}
    write_atomic(target / WEIGHTS_NAME, lambda p: save_file(state, p, metadata=meta))
    for name, payload in ((CONFIG_NAME, model.config), (SAMPLER_CONFIG_NAME, model.sampler_config)):
        write_json(target / name, payload)
    write_atomic(target / CARD_NAME, lambda p: Path(p).write_text(card))
    return target


def _split_legacy(config: dict) -> tuple[dict, dict | None]:
    """Repos written before sampler_config.json carried the sampler inside config.json."""
    config = dict(config)
    default, presets = config.pop("sampler", None), config.pop("sampler_presets", {})
    return config, ({"default": default, "presets": presets} if default is not None else None)


def _check_shapes(cls, config: dict, weights: Path, cached: bool) -> None:
    """Compare the tensor shapes in the weights file's header with those of the architecture, built on the meta
    device (no memory), before anything is allocated: a config.json far larger than its weights is refused at once."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:
        if cached:
            purge_cached(weights)
        raise WeightsIntegrityError(f"{weights} is not a readable safetensors file: {err}"
                                    + (" (removed from the cache; retry the download)" if cached else "")) from None
    with torch.device("meta"):
        skeleton = cls(config)
    expected = {k: tuple(v.shape) for k, v in skeleton.net.state_dict().items()}
    wrong = sorted(k for k in expected.keys() & stored.keys() if expected[k] != stored[k])
    missing, unexpected = sorted(expected.keys() - stored.keys()), sorted(stored.keys() - expected.keys())
    if wrong or missing or unexpected:
        detail = "; ".join(part for part in (
            wrong and f"shapes differ for {wrong[:3]} (config {expected[wrong[0]]} vs file {stored[wrong[0]]})",
            missing and f"missing {missing[:3]}", unexpected and f"unexpected {unexpected[:3]}") if part)
        raise WeightsIntegrityError(f"{weights} does not fit the architecture in {CONFIG_NAME}: {detail}")


@contextlib.contextmanager
def _purged_if_malformed(path: Path, cached: bool):
    """A downloaded file that does not parse is removed from the HF cache (its snapshot entry would otherwise be
    served again for the same commit), and the error says so."""
    try:
        yield
    except ConfigError as err:
        if not cached:
            raise
        purge_cached(path)
        raise ConfigError(f"{err} (the downloaded file was removed from the cache; retry the download)") from None


def load_model(cls, name_or_path, *, revision: str | None = None, sha256: dict[str, str] | None = None,
               mirror=None, mirror_revision: str | None = None, device=None, dtype=None, cache_dir=None, token=None):
    """Build ``cls`` from a resolved folder and load its weights strictly."""
    from safetensors.torch import load_file

    folder, cached = resolve_pretrained(name_or_path, revision=revision, sha256=sha256, mirror=mirror,
                                        mirror_revision=mirror_revision, cache_dir=cache_dir, token=token)
    with _purged_if_malformed(folder / CONFIG_NAME, cached):
        config, legacy_sampler = _split_legacy(read_json(folder / CONFIG_NAME))
        parse_model_config(config, str(folder / CONFIG_NAME))
    sampler_file = folder / SAMPLER_CONFIG_NAME
    with _purged_if_malformed(sampler_file, cached):
        sampler_config = read_json(sampler_file) if sampler_file.is_file() else legacy_sampler
        if sampler_config is not None:
            build(SamplerSpec, sampler_config, str(sampler_file))
    _check_shapes(cls, config, folder / WEIGHTS_NAME, cached)
    model = cls(config, sampler_config=sampler_config)
    state = load_file(str(folder / WEIGHTS_NAME))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsIntegrityError(f"{folder / WEIGHTS_NAME} holds NaN or inf values in {bad[:3]}"
                                    + (" and more" if len(bad) > 3 else "") + ": refused")
    reference = model.net.state_dict()
    try:
        model.net.load_state_dict({k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()},
                                  strict=True)
    except RuntimeError as err:
        raise WeightsIntegrityError(f"{folder / WEIGHTS_NAME} does not fit the architecture in {CONFIG_NAME}: {err}") from None
    if (folder / CARD_NAME).is_file():
        model.card = (folder / CARD_NAME).read_text()
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_published(cls, entry, *, revision: str | None = None, mirror=None, device=None, dtype=None,
                   cache_dir=None) -> "torch.nn.Module":
    """An entry's published weights as ``cls``: its pinned revision, sha256-verified; ``revision=`` another one from
    the Hub, unverified (the pins belong to the pinned one). The entry must have a ``weights`` block."""
    pinned = revision is None or revision == entry.weights.revision
    return load_model(cls, entry.weights.repo_id, revision=revision, mirror_revision=entry.weights.revision,
                      sha256=entry.weights.sha256 if pinned else None, mirror=mirror, device=device, dtype=dtype,
                      cache_dir=cache_dir)


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, *, token: str | None = None, private: bool | None = None,
                       revision: str | None = None, commit_message: str = "Upload ebm-zoo model") -> str:
    """Create ``repo_id`` if needed and upload the repo files (and the card's images in ``assets/``); returns the
    commit URL."""
    check_repo_id(repo_id)
    try:
        def push(seconds: float):
            api = HfApi(token=token)
            api.create_repo(repo_id, private=private, exist_ok=True)
            return api.upload_folder(folder_path=str(folder), repo_id=repo_id, revision=revision,
                                     commit_message=commit_message, allow_patterns=[*REPO_FILES, ASSETS])

        info = bounded_hub_call(push, f"the push to {repo_id!r}")
    except Exception as err:
        raise HubError(f"push of {folder} to {repo_id!r} failed: {type(err).__name__}: {err}") from err
    return str(info)
