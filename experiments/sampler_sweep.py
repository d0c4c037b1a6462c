"""Sample quality against a sampler's settings, on an entry's weights: the data behind the ``ncebm-*`` entries' default
sampler and presets (the probability-flow ODE, Heun on EDM's sigma schedule, and EDM's stochastic sampler) and the
Denoising-EBM entries' data stage.

    python experiments/sampler_sweep.py --entry ncebm-mnist --data-dir ../shared/datasets [-n 500]
    python experiments/sampler_sweep.py --entry ncebm-mnist --point 80 0.002 18 7 ...   # more points, appended
    python experiments/sampler_sweep.py --entry ncebm-mnist --churn 30 0.01 1 1.007 18 ...  # EDM's stochastic sampler

For each point (sigma_max, sigma_min, steps, rho) it draws n samples (seed 0) and scores them as ``zoo eval`` does
(classifier-FID / KID / IS and the confident-class share, against the same training images), beside the same numbers
for n real test images. The network was trained on a log-normal sigma (the entry's ``p_mean``, ``p_std``): a
schedule that starts far above or ends far below that range asks the network where it has hardly been trained.
``--override JSON`` points run the entry's default sampler with those keys changed (any family: how the
``denoising-ebm-cifar10`` data-stage table was measured, e.g. ``--override '{"data_sigma_max": 0.7}'``).
``--churn S_CHURN S_TMIN S_TMAX S_NOISE STEPS`` points run the ``edm_stochastic`` sampler (Heun steps with EDM's
churn) on the entry's default sigma_max, sigma_min and rho instead. Each point names the weights it measured (the
first 12 hex digits of their sha256: the campaign replaces them): the bundled ones, or with ``--weights FOLDER`` an
export that is not published (a campaign slice's ``run/export``: a sampler re-measured on the newer weights before a
publish decides on them). Results go to
``model_cards/<entry>.sampler_sweep.json`` after every point (seconds are wall time on this machine, with whatever else
ran).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import zoo
from zoo.data import load_tensor
from zoo.evaluation.generate import generate
from zoo.evaluation.quality import ClassifierFeatures, classifier_for, confident_share, real_data_ceiling, sample_quality
from zoo.hub import sha256_file, write_atomic

CARDS = Path(__file__).resolve().parents[1] / "model_cards"
# (sigma_max, sigma_min, steps, rho): the default (10, 0.002, 18, 7) first, then one setting changed at a time
GRID = [(10.0, 0.002, 18, 7.0), (5.0, 0.002, 18, 7.0), (2.5, 0.002, 18, 7.0), (40.0, 0.002, 18, 7.0),
        (10.0, 0.01, 18, 7.0), (10.0, 0.002, 35, 7.0), (10.0, 0.002, 18, 3.0)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entry", required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("-n", type=int, default=500)
    p.add_argument("--n-real", type=int, default=2000)
    p.add_argument("--point", nargs=4, type=float, action="append", metavar=("SIGMA_MAX", "SIGMA_MIN", "STEPS", "RHO"),
                   help="sweep these points instead of the grid, appended to the results file")
    p.add_argument("--churn", nargs=5, type=float, action="append",
                   metavar=("S_CHURN", "S_TMIN", "S_TMAX", "S_NOISE", "STEPS"),
                   help="edm_stochastic points on the entry's default sigma range, appended to the results file")
    p.add_argument("--weights", type=Path, default=None, metavar="FOLDER",
                   help="measure this export (config.json + model.safetensors) of the entry instead of its bundled weights")
    p.add_argument("--override", type=json.loads, action="append", metavar="JSON",
                   help="the default sampler with these keys changed, appended to the results file")
    args = p.parse_args()
    entry = zoo.get_entry(args.entry)
    model = zoo.load(args.weights if args.weights else args.entry)
    if model.config.get("entry", args.entry) != args.entry:
        raise SystemExit(f"--weights {args.weights} holds {model.config['entry']!r}, not {args.entry!r}")
    clf = classifier_for(entry, zoo.EnergyModel)
    feats, logits = ClassifierFeatures(clf, model.data_range), ClassifierFeatures(clf, model.data_range, "logits")
    train = load_tensor(entry, "train", args.data_dir, limit=args.n_real)
    test = load_tensor(entry, "test", args.data_dir)
    ceiling = real_data_ceiling(test, train, args.n, feats, logits, torch.Generator().manual_seed(0))
    ceiling["confident_share"] = confident_share(test[:args.n], logits)
    path = CARDS / f"{args.entry}.sampler_sweep.json"
    out = {"entry": args.entry, "n": args.n, "n_real": len(train), "real_data_ceiling": ceiling, "points": []}
    if (args.point or args.churn or args.override) and path.is_file():
        out["points"] = json.loads(path.read_text())["points"]
    weights = (sha256_file(args.weights / "model.safetensors") if args.weights
               else entry.weights.sha256["model.safetensors"])[:12]  # which weights a point measured
    default = {k: model.sampler_config["default"][k] for k in ("sigma_max", "sigma_min", "rho")} if args.churn else {}
    configs = ([{"name": "pf_ode", "sigma_max": a, "sigma_min": b, "steps": int(n), "rho": r}
                for a, b, n, r in (args.point or ([] if args.churn or args.override else GRID))]
               + [{"name": "edm_stochastic", **default, "steps": int(n), "s_churn": c, "s_tmin": lo, "s_tmax": hi,
                   "s_noise": sn} for c, lo, hi, sn, n in args.churn or []]
               + (args.override or []))
    for config in configs:
        start = time.time()
        x = generate(model, args.n, batch_size=64, seed=0, **config)
        seconds = time.time() - start
        q = sample_quality(x, train, feats, logits)
        q["confident_share"] = confident_share(x, logits)
        point = {**config, "weights": weights, "seconds": round(seconds, 1), **{k: round(v, 4) for k, v in q.items()}}
        out["points"].append(point)
        print(json.dumps(point), flush=True)
        write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(out, indent=1) + "\n"))


if __name__ == "__main__":
    main()
