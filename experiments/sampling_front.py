"""Quality against cost of the annealed-Langevin sampler (MDSM Sec. 3.2) on this machine: the data behind the
entries' ``fast`` presets.

    python experiments/sampling_front.py sweep --entry mdsm-mnist-small [--steps 25 50 100 200] [-n 64] [--grid 10:0.05]
    python experiments/sampling_front.py calibrate --entry mdsm-mnist-small   # re-time one step on an idle machine
    python experiments/sampling_front.py figure --entry mdsm-mnist-small

``sweep`` draws n samples (seed 0) for every (total steps, T_max, step size) of the grid (``--grid T_MAX:EPS ...``,
default ``GRID``) with the paper's schedule
shape (18.5% of the steps held at T_max, 74% exponential decay to T = 1, 7.5% linear to 0, then the denoising jump)
and scores them with the zoo's classifier (classifier-FID / KID against the training set, classifier-IS, confident-class
share),
beside the same numbers for n real test images. The cost is seconds for n samples: the steps times the time of one
chain step at batch n, measured with the model's default sampling path (``compile="auto"``: eager for chains this short on
a CPU) once at the start, or again by ``calibrate`` on an idle machine, so the front does not depend on what else ran
during the sweep. Results go to
``model_cards/<entry>.front.json`` after every point; ``figure`` draws ``<entry>_front.png`` in ``assets/`` of the entry's
bundled weights folder (the card's image).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import zoo
from zoo.cards import card_asset, presets_at
from zoo.data import load_tensor
from zoo.evaluation.quality import ClassifierFeatures, classifier_for, confident_share, real_data_ceiling, sample_quality
from zoo.hub import write_atomic

CARDS = Path(__file__).resolve().parents[1] / "model_cards"
GRID = [(100.0, 0.02), (30.0, 0.03), (10.0, 0.05), (30.0, 0.05)]  # (T_max, step size); the paper is (100, 0.02)


def schedule(n_steps: int, t_max: float, step_size: float) -> dict:
    """The paper's 500/2000/200 split (Fig. A7B) scaled to n_steps."""
    n_hold, n_final = round(0.185 * n_steps), round(0.075 * n_steps)
    return {"schedule": "exp", "t_max": t_max, "step_size": step_size, "n_hold": n_hold,
            "n_anneal": n_steps - n_hold - n_final, "n_final": n_final}


def grid_point(text: str) -> tuple[float, float]:
    """'10:0.05' -> (T_max 10.0, step size 0.05)."""
    t_max, _, eps = text.partition(":")
    try:
        return float(t_max), float(eps)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected T_MAX:EPS such as 10:0.05, got {text!r}") from None


def seconds_per_step(model, n: int) -> float:
    """One chain step at batch n (after a warm-up chain, so compilation is not counted)."""
    model.sample(n, preset="langevin", n_steps=2, seed=0, progress=False)
    start = time.perf_counter()
    model.sample(n, preset="langevin", n_steps=5, seed=0, progress=False)
    return (time.perf_counter() - start) / 5


def cmd_sweep(args) -> None:
    entry = zoo.get_entry(args.entry)
    model = zoo.load(args.entry, dtype=torch.float32)
    clf = classifier_for(entry, zoo.EnergyModel)
    feats, logits = ClassifierFeatures(clf, model.data_range), ClassifierFeatures(clf, model.data_range, "logits")
    train = load_tensor(entry, "train", args.data_dir, limit=args.n_real)
    test = load_tensor(entry, "test", args.data_dir)
    path = CARDS / f"{args.entry}.front.json"
    g = torch.Generator().manual_seed(0)
    ceiling = real_data_ceiling(test, train, args.n, feats, logits, g)
    ceiling["confident_share"] = confident_share(test[:args.n], logits)
    per_step = seconds_per_step(model, args.n)
    out = {"entry": args.entry, "n": args.n, "n_real": len(train), "seconds_per_step": round(per_step, 4),
           "machine": f"CPU, {torch.get_num_threads()} threads", "real_data_ceiling": ceiling, "points": []}
    for steps in args.steps:
        for t_max, eps in args.grid:
            cfg = schedule(steps, t_max, eps)
            start = time.perf_counter()
            x = model.sample(args.n, seed=0, progress=False, **cfg)
            wall = time.perf_counter() - start
            q = sample_quality(x, train, feats, logits)
            q["confident_share"] = confident_share(x, logits)
            point = {"steps": steps, **cfg, "seconds": round(steps * per_step, 1), "wall_seconds": round(wall, 1), **q}
            out["points"].append(point)
            print(json.dumps(point), flush=True)
            write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(out, indent=1) + "\n"))


def cmd_calibrate(args) -> None:
    path = CARDS / f"{args.entry}.front.json"
    out = json.loads(path.read_text())
    out["seconds_per_step"] = round(seconds_per_step(zoo.load(args.entry, dtype=torch.float32), out["n"]), 4)
    for point in out["points"]:
        point["seconds"] = round(point["steps"] * out["seconds_per_step"], 1)
    write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(out, indent=1) + "\n"))
    print(f"{args.entry}: {out['seconds_per_step']} s per step at batch {out['n']}")


def cmd_figure(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads((CARDS / f"{args.entry}.front.json").read_text())
    presets = zoo.get_entry(args.entry).sampler_config_json()["presets"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "fid", "classifier-FID (lower is better)"),
                           (axes[1], "is", "classifier-IS (higher is better)")):
        for t_max, eps in sorted({(p["t_max"], p["step_size"]) for p in res["points"]}, reverse=True):
            pts = [p for p in res["points"] if p["t_max"] == t_max and p["step_size"] == eps]
            ax.plot([p["seconds"] for p in pts], [p[key] for p in pts], "o-", label=f"T_max {t_max:g}, eps {eps:g}")
        for point in res["points"]:
            for preset in presets_at(point, presets):
                ax.annotate(preset, (point["seconds"], point[key]), textcoords="offset points", xytext=(4, 6), fontsize=8)
        ax.axhline(res["real_data_ceiling"][key], color="k", ls="--", lw=1, label="real test images")
        ax.axvline(60, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel(f"seconds for {res['n']} samples ({res['machine']})")
        ax.set_ylabel(label)
    axes[0].set_yscale("log")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{res['entry']}: annealed Langevin, quality vs cost (n = {res['n']}, seed 0)")
    fig.tight_layout()
    out = card_asset(args.entry, f"{args.entry}_front.png")
    fig.savefig(out, dpi=100)
    print(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--entry", required=True)
    s.add_argument("--steps", type=int, nargs="+", default=[25, 50, 100, 200])
    s.add_argument("-n", type=int, default=64)
    s.add_argument("--grid", type=grid_point, nargs="+", default=GRID, metavar="T_MAX:EPS")
    s.add_argument("--n-real", type=int, default=10000)
    s.add_argument("--data-dir", default="../shared/datasets")
    for cmd in ("calibrate", "figure"):
        sub.add_parser(cmd).add_argument("--entry", required=True)
    args = p.parse_args()
    {"sweep": cmd_sweep, "calibrate": cmd_calibrate, "figure": cmd_figure}[args.cmd](args)


if __name__ == "__main__":
    main()
