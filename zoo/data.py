"""Datasets through ``datasets``: from a local mirror with the Hub's repo layout, or from the Hub.

Mirror layout (as in ``../shared/datasets``): ``<data_dir>/<hub_id or mirror_id>/<config>/<split>-*.parquet``.
Images are decoded once into an in-memory float tensor (N, C, H, W) in the model's data range, with the
entry's deterministic preprocessing (zero-padding, resize + centre crop). Random flips are a training-time
augmentation (``random_hflip``) applied to tensor batches.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .errors import ConfigError, DatasetNotFoundError, InputError

DATA_ENV = "ZOO_DATA_DIR"
CACHE_ENV = "ZOO_DATA_CACHE"  # decoded-array cache; default ~/.cache/ebm-zoo/data


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ebm-zoo" / "data")


def _cache_file(data, split: str, channels: int) -> Path:
    """The cache of one split as this entry reads it: keyed by the dataset's split (or slice), channels and resize."""
    rows = re.sub(r"[^A-Za-z0-9]+", "_", data.splits.get(split, split)).strip("_")
    tag = f"{split}-c{channels}-r{data.resize or 0}" + (f"-{rows}" if rows != split else "")
    return cache_root() / data.hub_id / (data.config or "default") / f"{tag}.npz"


def make_toy(name: str, n: int, seed: int, noise: float = 0.02) -> torch.Tensor:
    """Seedable 2-D toy data (N, 2): ``spiral`` (1.5 turns, radius up to 1) or ``gmm`` (8 Gaussians on the unit circle,
    std 0.1 + noise)."""
    g = torch.Generator().manual_seed(seed)
    if name == "spiral":
        t = torch.rand(n, generator=g, dtype=torch.float64)
        angle = 3 * math.pi * t
        x = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], 1)
    elif name == "gmm":
        k = torch.randint(0, 8, (n,), generator=g)
        angle = 2 * math.pi * k.double() / 8
        x = torch.stack([torch.cos(angle), torch.sin(angle)], 1) + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    else:
        raise ConfigError(f"unknown toy dataset {name!r}; known: spiral, gmm")
    return (x + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()


def _mirror_files(data, split: str, data_dir: str | os.PathLike | None) -> tuple[list[str], list[str]]:
    roots = [Path(data_dir)] if data_dir else []
    roots += [Path(p) for p in os.environ.get(DATA_ENV, "").split(os.pathsep) if p]
    looked = []
    for root in roots:
        for repo in dict.fromkeys([data.hub_id, data.mirror_id]):
            if repo is None:
                continue
            folder = root / repo / (data.config or "default")
            looked.append(str(folder / f"{split}-*.parquet"))
            files = sorted(str(p) for p in folder.glob(f"{split}-*.parquet"))
            if files:
                return files, looked
    return [], looked


def _probe_hub(hub_id: str) -> None:
    """One bounded request for the dataset's card, so that an unreachable Hub fails in seconds instead of through
    ``datasets``' retries. Skipped with ``HF_HUB_OFFLINE=1`` (``datasets`` then uses its cache)."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    from .hub import bounded_hub_call

    if constants.is_offline_mode():
        return
    bounded_hub_call(lambda seconds: get_hf_file_metadata(hf_hub_url(hub_id, "README.md", repo_type="dataset"),
                                                          timeout=seconds), f"the probe of dataset {hub_id!r}")


def load_split(data, split: str = "train", data_dir: str | os.PathLike | None = None):
    """A ``datasets.Dataset`` for one split: local parquet mirror first, else the Hub."""
    import datasets

    hub_split = data.splits.get(split)  # a split of the dataset, or a slice of one (datasets' "train[3500:]")
    if hub_split is None:
        raise DatasetNotFoundError(f"dataset {data.hub_id} has no {split!r} split in this entry ({sorted(data.splits)})")
    base = hub_split.split("[", 1)[0]
    files, looked = _mirror_files(data, base, data_dir)
    if files:
        return datasets.load_dataset("parquet", data_files={base: files}, split=hub_split)
    try:
        _probe_hub(data.hub_id)
        return datasets.load_dataset(data.hub_id, data.config, split=hub_split)
    except Exception as err:
        raise DatasetNotFoundError(
            f"dataset {data.hub_id!r} split {hub_split!r} not found. Looked in the local mirror "
            f"{looked or '(no --data-dir given and $' + DATA_ENV + ' unset)'} and on the Hub "
            f"({type(err).__name__}: {err}). Pass --data-dir / data_dir= or set ${DATA_ENV} to a folder with the "
            f"Hub repo layout <hub_id>/<config>/<split>-*.parquet (e.g. ../shared/datasets), or HF_HUB_OFFLINE=1 "
            f"to use a copy in the datasets cache."
        ) from err


def _to_array(image, resize: int | None) -> np.ndarray:
    """PIL image -> uint8 array (H, W, C); optional shorter-side resize + centre crop."""
    if resize:
        w, h = image.size
        scale = resize / min(w, h)
        image = image.resize((max(resize, round(w * scale)), max(resize, round(h * scale))), resample=3)  # bicubic
        w, h = image.size
        left, top = (w - resize) // 2, (h - resize) // 2
        image = image.crop((left, top, left + resize, top + resize))
    arr = np.asarray(image)
    return arr[:, :, None] if arr.ndim == 2 else arr


def preprocess(images: np.ndarray, data, data_range: tuple[float, float]) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H', W') in data_range, zero-padded to ``pad_to`` if set."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    lo, hi = data_range
    x = lo + (hi - lo) * x
    if data.pad_to:
        pad_h, pad_w = data.pad_to - x.shape[2], data.pad_to - x.shape[3]
        if pad_h < 0 or pad_w < 0:
            raise InputError(f"images are {x.shape[2]}x{x.shape[3]}, larger than pad_to={data.pad_to} of this entry")
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=lo)
    return x.contiguous()


def over_black(image):
    """An RGB image with any transparency (RGBA, LA, P with transparency) composited over black, the background of the
    zoo's digit datasets."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image.convert("RGBA"))
    return image.convert("RGB")


def images_to_tensor(images, entry, data_range: tuple[float, float], names: list[str] | None = None) -> torch.Tensor:
    """PIL images (or image files) -> float (N, C, H, W) in ``data_range``, preprocessed as the entry's dataset is
    (resize + centre crop, padding). Transparent pixels (RGBA, LA, P with transparency) are composited over black,
    the background of the zoo's digit datasets; one ``InputError`` names a file that is not an image or an image
    whose size the entry cannot take."""
    from PIL import Image, UnidentifiedImageError

    channels, expected = entry.model.input_shape[0], tuple(entry.model.input_shape)
    names = names or [f"image {i}" for i in range(len(images))]
    arrays = []
    for image, name in zip(images, names):
        try:
            image = image if isinstance(image, Image.Image) else Image.open(image)
            image.load()
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise InputError(f"{name}: not a readable image ({err})") from None
        arrays.append(_to_array(over_black(image).convert("L" if channels == 1 else "RGB"), entry.data.resize))
    if not arrays:
        raise InputError("no images given")
    sizes = sorted({a.shape[:2] for a in arrays})
    if len(sizes) != 1:
        raise InputError(f"the images have different sizes {sizes}")
    try:
        x = preprocess(np.stack(arrays), entry.data, data_range)
    except InputError:  # larger than the entry's padding
        x = None
    if x is None or tuple(x.shape[1:]) != expected:
        h, w = sizes[0]
        raise InputError(f"{names[0] if len(names) == 1 else 'the images'}: {w}x{h} pixels; {entry.name} takes "
                         f"{expected[2]}x{expected[1]} images" + (" (smaller ones are padded)" if entry.data.pad_to else "")
                         + ": resize the image first")
    return x


def grid_image(x: torch.Tensor, data_range: tuple[float, float], nrow: int, padding: int = 2):
    """(N, C, H, W) in ``data_range`` -> one PIL image of the images in rows of ``nrow`` (torchvision's grid)."""
    from PIL import Image
    from torchvision.utils import make_grid

    lo, hi = data_range
    grid = make_grid(((x.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1), nrow=nrow, padding=padding)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr[:, :, 0] if x.shape[1] == 1 else arr)


def load_tensor(entry, split: str = "train", data_dir: str | os.PathLike | None = None, limit: int | None = None,
                labels: bool = False):
    """Decode a split once into memory: float (N, C, H, W) in the entry's data range, preprocessed; with
    ``labels=True`` also the class labels (N,) (int64) from ``data.label_column``.

    A whole decoded split (and its labels, when the dataset has them) is cached as uint8 in ``$ZOO_DATA_CACHE``
    (written atomically), so later runs skip the image decoding (and need no ``datasets`` install)."""
    data = entry.data
    if data.toy is not None:
        if labels:
            raise DatasetNotFoundError(f"toy dataset {data.toy!r} has no labels")
        n = data.n.get(split)
        if n is None:
            raise DatasetNotFoundError(f"toy dataset {data.toy!r} has no {split!r} split ({sorted(data.n)})")
        return make_toy(data.toy, n if limit is None else min(n, limit), data.seed + (split != "train"))
    channels = entry.model.input_shape[0]
    cache = _cache_file(data, split, channels)
    stored = np.load(cache) if cache.is_file() else None
    if stored is not None and (not labels or "labels" in stored):
        images, ys = stored["images"][:limit], stored["labels"][:limit] if labels else None
    else:
        ds = load_split(data, split, data_dir)
        if labels and data.label_column not in ds.column_names:
            raise DatasetNotFoundError(f"dataset {data.hub_id!r} has no label column {data.label_column!r} "
                                       f"(columns: {ds.column_names})")
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        mode = "L" if channels == 1 else "RGB"
        images = np.stack([_to_array(img.convert(mode), data.resize) for img in ds[data.image_column]])
        ys = np.asarray(ds[data.label_column], dtype=np.int64) if data.label_column in ds.column_names else None
        if limit is None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
            np.savez_compressed(tmp, images=images, **({"labels": ys} if ys is not None else {}))
            os.replace(tmp, cache)
    x = preprocess(images, data, tuple(entry.model.data_range))
    return (x, torch.from_numpy(ys)) if labels else x


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)
