"""The measured results of published weights, read by the card writer and by ``zoo list`` / ``zoo info``.

``zoo eval``'s numbers belong to the weights: ``eval_results.json`` is a file of the weights' Hub repo, beside
``model.safetensors`` (in the bundled ``hub_mirror/<repo_id>/``, in a ``$ZOO_HUB_MIRROR`` folder or in the HF cache
after a download), so an installed package shows the same numbers as a source checkout. The campaign's ledger
(``model_cards/<entry>.campaign.json``: every training slice and its measurement) and the sampler sweeps
(``<entry>.front.json``) are the source tree's records of how the weights were made."""
from __future__ import annotations

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent.parent / "model_cards"


def weights_folder(name: str) -> Path | None:
    """The local folder of an entry's published weights: a mirror's ``<repo_id>/`` (``hub.mirror_roots``), else the
    HF cache's snapshot of the pinned revision; None when the entry has none or they were never fetched."""
    from huggingface_hub import try_to_load_from_cache

    from .hub import CONFIG_NAME, mirror_roots
    from .registry import get_entry

    weights = get_entry(name).weights
    if weights is None:
        return None
    for root in mirror_roots():
        if (root / weights.repo_id / CONFIG_NAME).is_file():
            return root / weights.repo_id
    cached = try_to_load_from_cache(weights.repo_id, CONFIG_NAME, revision=weights.revision)
    return Path(cached).parent if isinstance(cached, str) else None


def read_results(name: str) -> dict | None:
    """``eval_results.json`` of the entry's weights, where they are (None if there is none)."""
    from .hub import EVAL_NAME

    folder = weights_folder(name)
    path = folder / EVAL_NAME if folder is not None else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def published_results_path(name: str) -> Path:
    """Where ``zoo eval`` and the campaign publish an entry's numbers: its bundled weights folder."""
    from .errors import InputError
    from .hub import EVAL_NAME, bundled_folder
    from .registry import get_entry

    folder = bundled_folder(get_entry(name))
    if not folder.is_dir():
        raise InputError(f"{name} has no bundled weights folder to publish its results in; pass --output-json FILE")
    return folder / EVAL_NAME


def read_front(name: str) -> dict | None:
    """The sampler's quality-vs-cost sweep (``experiments/sampling_front.py`` writes ``<entry>.front.json``)."""
    path = RESULTS_DIR / f"{name}.front.json"
    return json.loads(path.read_text()) if path.is_file() else None


def ledger_path(entry: str) -> Path:
    return RESULTS_DIR / f"{entry}.campaign.json"


def read_ledger(entry: str) -> dict:
    path = ledger_path(entry)
    if not path.is_file():
        return {"entry": entry, "slices": [], "published": None}
    return json.loads(path.read_text())


def totals(ledger: dict) -> dict:
    """Steps of the current weights' lineage (a slice that starts from scratch begins a new one, e.g. after a change
    of network) and hours accumulated over every slice, per device kind."""
    out = {"steps": 0, "cpu_hours": 0.0, "gpu_hours": 0.0}
    for s in ledger["slices"]:
        out["steps"] = max(0 if s["start"] == "scratch" else out["steps"], s["steps_to"])
        out["gpu_hours" if s["device"].startswith("cuda") else "cpu_hours"] += s["hours"]
    return out
