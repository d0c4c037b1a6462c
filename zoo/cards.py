"""The one model-card writer (huggingface_hub ``ModelCard`` / ``ModelCardData`` / ``EvalResult`` -> model-index).

A card is generated from what is true of the weights it ships with: the entry (paper, data, reported numbers),
the actual config.json and sampler_config.json, the training run (command, history) when there is one, and the
zoo's measured notes for the bundled weights (``model_cards/<entry>.md``, hand-written observations and tables).
The bundled mirror's README.md files are written only by ``python -m zoo.cards`` (a test keeps them in sync).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

NOTES_DIR = Path(__file__).resolve().parent.parent / "model_cards"


def _architecture(config: dict) -> str:
    arch = dict(config["architecture"])
    name = arch.pop("class")
    args = ", ".join(f"{k}={v}" for k, v in arch.items())
    return f"`{name}({args})` on inputs {list(config['input_shape'])} in {list(config['data_range'])}, sigma0 = {config['sigma0']}"


def _table(rows: dict) -> str:
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items())


def _reported(reported: dict) -> str:
    rows = ["| metric | value | how |", "|---|---|---|"]
    for key, item in reported.items():
        item = item if isinstance(item, dict) else {"value": item}
        rows.append(f"| {key} | {item.get('value', '')} | {item.get('method') or item.get('note') or ''} |")
    return "\n".join(rows)


def build_card(config: dict, sampler_config: dict | None = None, entry=None, training: dict | None = None,
               notes: str | None = None) -> ModelCard:
    """A ModelCard for weights with this config; ``training`` = {"command": ..., "stats": {...}} of the run that
    produced them; ``notes`` = the zoo's measured notes (markdown)."""
    name = config.get("entry", "ebm-zoo-model")
    family = config.get("family", "ebm")
    eval_results = [EvalResult(**r) for r in (entry.card.eval_results if entry is not None and notes else [])]
    data = ModelCardData(
        library_name="ebm-zoo", license="mit", tags=["energy-based-model", family],
        datasets=[entry.dataset_name()] if entry is not None and entry.data.hub_id else None,
        model_name=name if eval_results else None, eval_results=eval_results or None,
    )
    parts = [f"# {name}", ""]
    if entry is not None:
        parts += [entry.description, "", f"**Paper:** {entry.paper}", ""]
    parts += ["## Model", "", f"Architecture (from config.json): {_architecture(config)}.", ""]
    if sampler_config:
        presets = ", ".join(f"`{p}`" for p in sampler_config.get("presets", {})) or "none"
        parts += [f"Default sampler (sampler_config.json): `{json.dumps(sampler_config['default'])}`; presets: {presets}.", ""]
    parts += ["## Use", "", "```python", "import zoo",
              f"m = zoo.load({name!r})  # or zoo.load('path/to/this/folder') / zoo.load('hf-hub:<org>/<repo>')",
              "x = m.sample(16, preset='fast', seed=0)   # in the data range" if sampler_config and "fast" in sampler_config.get("presets", {})
              else "x = m.sample(16, seed=0)   # in the data range",
              "e = m.energy(x)", "```", ""]
    if training:
        parts += ["## Training", "", "```bash", training["command"], "```", "", _table(training["stats"]), ""]
    if entry is not None and entry.reported:
        parts += ["## Paper's reported numbers", "", _reported(entry.reported), ""]
    if entry is not None and entry.weights is not None and notes:
        parts += [f"Bundled in this repository's `hub_mirror/{entry.weights.repo_id}`; the Hub repo id is "
                  f"`{entry.weights.repo_id}` (revision `{entry.weights.revision}`).", ""]
    if notes:
        parts += [notes.strip(), ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts))


def default_card(config: dict) -> str:
    return str(build_card(config))


def notes_for(name: str) -> str | None:
    path = NOTES_DIR / f"{name}.md"
    if not path.is_file():
        return None
    # image links in the notes are relative to model_cards/; the mirror card lives 3 folders deeper
    return path.read_text().replace("](assets/", "](../../../model_cards/assets/")


def mirror_card(entry) -> str:
    """The README.md of an entry's bundled weights."""
    from .hub import BUNDLED_MIRROR, SAMPLER_CONFIG_NAME
    from .schema import read_json

    folder = BUNDLED_MIRROR / entry.weights.repo_id
    sampler = read_json(folder / SAMPLER_CONFIG_NAME) if (folder / SAMPLER_CONFIG_NAME).is_file() else entry.sampler_config_json()
    return str(build_card(entry.config_json(), sampler, entry, notes=notes_for(entry.name)))


def main(argv: list[str] | None = None) -> int:
    """python -m zoo.cards [--check]: (re)write the README.md of every bundled weights folder from one writer."""
    from .hub import BUNDLED_MIRROR
    from .registry import load_entries

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--check", action="store_true", help="only report cards that differ; exit 1 if any")
    args = p.parse_args(argv)
    stale = []
    for entry in load_entries().values():
        if entry.weights is None or not (BUNDLED_MIRROR / entry.weights.repo_id).is_dir():
            continue
        path = BUNDLED_MIRROR / entry.weights.repo_id / "README.md"
        text = mirror_card(entry)
        if not path.is_file() or path.read_text() != text:
            stale.append(str(path))
            if not args.check:
                path.write_text(text)
    print(("stale: " if args.check else "wrote: ") + (", ".join(stale) or "nothing"))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
