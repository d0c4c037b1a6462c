"""The measured results of bundled weights (``zoo eval`` writes ``model_cards/<entry>.eval.json``): read by the card
writer and by ``zoo list`` (its headline column). No torch import: ``zoo list`` stays fast."""
from __future__ import annotations

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent.parent / "model_cards"


def results_path(name: str) -> Path:
    return RESULTS_DIR / f"{name}.eval.json"


def read_results(name: str) -> dict | None:
    path = results_path(name)
    return json.loads(path.read_text()) if path.is_file() else None


def read_front(name: str) -> dict | None:
    """The sampler's quality-vs-cost sweep (``experiments/sampling_front.py`` writes ``<entry>.front.json``)."""
    path = RESULTS_DIR / f"{name}.front.json"
    return json.loads(path.read_text()) if path.is_file() else None


def headline(name: str) -> str:
    """One measured number per entry, beside its ceiling where there is one (for ``zoo list``)."""
    payload = read_results(name)
    if payload is None:
        return "-"
    r = payload["results"]
    if "quality" in r:
        q = r["quality"]
        return f"cFID {q['model']['fid']:.3g} (real data {q['real_data_ceiling']['fid']:.3g}, n={q['n']})"
    if "accuracy" in r:
        return f"test accuracy {r['accuracy']['accuracy']:.4f}"
    if "likelihood" in r and "bits_per_dim" in r["likelihood"]:
        return f"bits/dim >= {r['likelihood']['bits_per_dim']['ais']:.3f} (AIS)"
    if "likelihood" in r:
        return f"NLL {r['likelihood']['nll_nats']['quadrature']:.3f} nats/point"
    return "-"
