"""The one model-card writer (huggingface_hub ``ModelCard`` / ``ModelCardData`` / ``EvalResult`` -> model-index).

A card is generated from what is true of the weights it ships with: the entry (paper, data, reported numbers),
the actual config.json and sampler_config.json, the training run (command, history) when there is one, and the
zoo's measured notes for the bundled weights (``model_cards/<entry>.md``, hand-written observations and tables).
The bundled mirror's README.md files are written only by ``python -m zoo.cards`` (a test keeps them in sync).
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .errors import ConfigError
from .evaluation.metric import fmt

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


def _eval_results(results: dict, entry) -> list[EvalResult]:
    """model-index rows (huggingface_hub EvalResult) from a ``zoo eval`` results dict: each metric renders its own."""
    from .evaluation import metrics

    common = dict(dataset_type=entry.data.hub_id or entry.dataset_name(), dataset_name=entry.dataset_name(),
                  dataset_split="test")
    return [row for name, metric in metrics() if name in results for row in metric.eval_results(results[name], entry, common)]


def measured_section(payload: dict, entry=None) -> str:
    """The card's "Measured" section from a ``zoo eval`` results JSON: every number beside its ceiling or baseline
    (each metric renders its own rows), the exact command and the hardware."""
    from .evaluation import metrics

    r = payload["results"]
    runs: dict = {}  # command -> (environment, metric groups it measured), in the order first seen
    for metric, prov in (payload.get("provenance") or {k: payload for k in r}).items():
        runs.setdefault(prov["command"], (prov["environment"], []))[1].append(metric)
    parts = ["## Measured by `zoo eval`", ""]
    for command, (env, measured) in runs.items():
        parts += [f"{env['date']}, {env['hardware']}, torch {env['torch']} ({', '.join(measured)}):", "",
                  "```bash", command, "```", ""]
    if "sampling" in r:
        s = r["sampling"]
        parts += [f"Samples: {s['n']} with the `{s['preset']}` sampler, {s['seconds']} s on {s['device']}.", ""]
    for name, metric in metrics():
        if name in r:
            parts += metric.card(r[name], entry)
    return "\n".join(parts)


def presets_at(point: dict, presets: dict) -> list[str]:
    """The sampler presets that are this point of a sampler sweep (same schedule, T_max, step size and lengths)."""
    keys = ("schedule", "t_max", "step_size", "n_hold", "n_anneal", "n_final")
    return [name for name, p in presets.items() if all(p.get(k) == point[k] for k in keys)]


def front_section(front: dict, sampler_config: dict) -> str:
    """Quality against cost of the sampler on a CPU (``model_cards/<entry>.front.json``) and where the presets sit."""
    presets = sampler_config.get("presets", {})
    ceiling = front["real_data_ceiling"]
    rows = [f"## Sampling presets: quality against cost ({front['machine']})", "",
            f"`sample({front['n']})` with seed 0 for each point of the sweep "
            f"(`python experiments/sampling_front.py sweep --entry {front['entry']}`). Seconds = steps x "
            f"{front['seconds_per_step']} s per chain step at batch {front['n']}, measured on an otherwise idle machine "
            f"(eager; `compile=\"auto\"` does not compile chains this short on a CPU). Classifier-FID/IS as in "
            f"\"Measured\" but on {front['n']} samples, so higher than there; real test images, same n: "
            f"cFID {fmt(ceiling['fid'])}, cIS {fmt(ceiling['is'])}.", "",
            f"![quality vs cost](assets/{front['entry']}_front.png)", "",
            "| steps | T_max | step size | seconds | cFID | KID | cIS | confident share | preset |",
            "|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(front["points"], key=lambda p: (p["seconds"], p["fid"])):
        rows.append(f"| {p['steps']} | {fmt(p['t_max'])} | {fmt(p['step_size'])} | {p['seconds']} | {fmt(p['fid'])} | "
                    f"{fmt(p['kid'])} | {fmt(p['is'], 3)} | {fmt(p['confident_share'], 2)} | {', '.join(f'`{n}`' for n in presets_at(p, presets))} |")
    paper = presets.get("paper")
    if paper:
        steps = paper["n_hold"] + paper["n_anneal"] + paper["n_final"]
        rows += ["", f"The `paper` preset ({steps} steps) would take about {steps * front['seconds_per_step'] / 60:.0f} "
                     f"minutes for {front['n']} samples here; it is the GPU setting."]
    return "\n".join(rows)


def history_section(ledger: dict) -> str:
    """The card's campaign history: every slice with its device, hours, steps and metric."""
    from .results import totals

    t = totals(ledger)
    rows = ["## Campaign history (`zoo campaign`)", "",
            f"{t['steps']:,} steps in {t['cpu_hours']:.2f} hours on a CPU and {t['gpu_hours']:.2f} on a GPU (wall time) "
            f"over {len(ledger['slices'])} slices. cFID = `zoo eval`'s classifier-FID of the fp16 weights on n samples "
            f"(default sampler, seed as in `campaign.yaml`), beside real test images at the same n. Hours are the "
            f"slice's wall time; core h the CPU time its process used (recorded since 2026-12-06): below the hours "
            f"when other work shared the cores.", "",
            "| date (UTC) | device | start | steps | hours | core h | cFID | real data | published |",
            "|---|---|---|---|---|---|---|---|---|"]
    for s in ledger["slices"]:
        core = f"{s['core_hours']:.2f}" if "core_hours" in s else "-"
        rows.append(f"| {s['date']} | {s['device']} | {s['start']} | {s['steps_from']:,} -> {s['steps_to']:,} | "
                    f"{s['hours']:.2f} | {core} | {s['fid']:.4g} | {s['fid_real_data']:.4g} | "
                    f"{'yes' if s['published'] else 'no'} |")
    return "\n".join(rows)


def build_card(config: dict, sampler_config: dict | None = None, entry=None, training: dict | None = None,
               notes: str | None = None, measured: dict | None = None, front: dict | None = None,
               campaign: dict | None = None) -> ModelCard:
    """A ModelCard for weights with this config; ``training`` = {"command": ..., "stats": {...}} of the run that
    produced them; ``notes`` = the zoo's notes (markdown); ``measured`` = a ``zoo eval`` results JSON (the
    "Measured" section and the model-index); ``front`` = a sampler sweep (the presets section); ``campaign`` = the
    campaign ledger of the weights (``zoo.campaign``: its history section)."""
    name = config.get("entry", "ebm-zoo-model")
    family = config.get("family", "ebm")
    eval_results = [EvalResult(**r) for r in (entry.card.eval_results if entry is not None and notes else [])]
    if measured is not None and entry is not None:
        eval_results += _eval_results(measured["results"], entry)
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
    if measured is not None:
        parts += [measured_section(measured, entry), ""]
    if front is not None and sampler_config:
        parts += [front_section(front, sampler_config), ""]
    if campaign is not None and campaign["slices"]:

        parts += [history_section(campaign), ""]
    if notes:
        parts += [notes.strip(), ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts))


def default_card(config: dict) -> str:
    return str(build_card(config))


def notes_for(name: str) -> str | None:
    """``model_cards/<name>.md``, else the notes of the longest group prefix (``ebm-2d-gmm.md`` for
    ``ebm-2d-gmm-ml``): entries trained and compared together share one page."""
    candidates = [NOTES_DIR / f"{name}.md"] + [NOTES_DIR / f"{name[:i]}.md" for i in range(len(name) - 1, 0, -1)
                                                if name[i] == "-"]
    path = next((c for c in candidates if c.is_file()), None)
    # image links (``assets/<file>``) are relative to the weights folder: its ``assets/`` travels with the card
    return path.read_text() if path is not None else None


def card_asset(name: str, filename: str) -> Path:
    """Where an image of an entry's card goes: ``assets/`` of its bundled weights folder (the card links it relative
    to itself, so it shows locally and on the Hub)."""
    from .hub import bundled_folder
    from .registry import get_entry

    folder = bundled_folder(get_entry(name)) / "assets"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / filename


def mirror_card(entry) -> str:
    """The README.md of an entry's bundled weights."""
    from .hub import BUNDLED_MIRROR, SAMPLER_CONFIG_NAME
    from .schema import read_json

    folder = BUNDLED_MIRROR / entry.weights.repo_id
    sampler = read_json(folder / SAMPLER_CONFIG_NAME) if (folder / SAMPLER_CONFIG_NAME).is_file() else entry.sampler_config_json()
    from .results import read_front, read_results

    from .results import ledger_path, read_ledger

    campaign = read_ledger(entry.name) if ledger_path(entry.name).is_file() else None
    card = str(build_card(entry.config_json(), sampler, entry, notes=notes_for(entry.name),
                          measured=read_results(entry.name), front=read_front(entry.name), campaign=campaign))
    missing = [f for f in re.findall(r"\]\((assets/[^)\s]+)\)", card) if not (folder / f).is_file()]
    if missing:
        raise ConfigError(f"the card of {entry.name} links {missing}, not in {folder}: an image of the card lives in "
                          f"the weights folder's assets/ (it travels with the weights to the Hub)")
    return card


def sampler_to_write(sampler: dict, folder: Path) -> dict | None:
    """An entry's ``sampler_config.json`` as it may be written beside the weights in ``folder``: the presets follow the
    entry, but a default other than the one already there is not written (None): the weights' numbers were measured
    under that one, so ``zoo campaign rescore`` re-evaluates them and writes the new default."""
    from .hub import SAMPLER_CONFIG_NAME
    from .schema import read_json

    bundled = folder / SAMPLER_CONFIG_NAME
    return sampler if not bundled.is_file() or read_json(bundled)["default"] == sampler["default"] else None


def main(argv: list[str] | None = None) -> int:
    """python -m zoo.cards [--check]: (re)write the README.md of every bundled weights folder from one writer, and its
    sampler_config.json from the entry (samplers are not sha-pinned: a tuned preset reaches the bundled weights). A
    changed *default* sampler is not written: the published numbers were measured under the bundled one, so the
    weights are re-evaluated first (``zoo campaign rescore``, which writes it)."""
    from .hub import BUNDLED_MIRROR, SAMPLER_CONFIG_NAME, json_text
    from .registry import load_entries

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--check", action="store_true", help="only report cards that differ; exit 1 if any")
    args = p.parse_args(argv)
    stale, unmeasured = [], []
    for entry in load_entries().values():
        if entry.weights is None or not (BUNDLED_MIRROR / entry.weights.repo_id).is_dir():
            continue
        folder = BUNDLED_MIRROR / entry.weights.repo_id
        sampler = sampler_to_write(entry.sampler_config_json(), folder)
        if sampler is None:
            unmeasured.append(entry.name)
            continue
        for path, text in ((folder / SAMPLER_CONFIG_NAME, lambda: json_text(sampler)), (folder / "README.md", lambda: mirror_card(entry))):
            text = text()
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
                if not args.check:
                    path.write_text(text)
    print(("stale: " if args.check else "wrote: ") + (", ".join(stale) or "nothing"))
    if unmeasured:
        print(f"not written: the default sampler of {', '.join(unmeasured)} differs from the bundled one, under which "
              f"its published numbers were measured; re-evaluate first (`zoo campaign rescore RUN` writes it)")
    return 1 if unmeasured or (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
