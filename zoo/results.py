"""The measured results of bundled weights, read by the card writer and by ``zoo list`` (its headline column):
``zoo eval``'s ``model_cards/<entry>.eval.json`` and the campaign's ledger ``model_cards/<entry>.campaign.json`` (every
training slice and its measurement). No torch import: ``zoo list`` stays fast."""
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


def ledger_path(entry: str) -> Path:
    return RESULTS_DIR / f"{entry}.campaign.json"


def read_ledger(entry: str) -> dict:
    path = ledger_path(entry)
    if not path.is_file():
        return {"entry": entry, "slices": [], "published": None}
    return json.loads(path.read_text())


def totals(ledger: dict) -> dict:
    """Steps and hours accumulated over every slice, per device kind."""
    out = {"steps": 0, "cpu_hours": 0.0, "gpu_hours": 0.0}
    for s in ledger["slices"]:
        out["steps"] = max(out["steps"], s["steps_to"])
        out["gpu_hours" if s["device"].startswith("cuda") else "cpu_hours"] += s["hours"]
    return out
