"""The six training methods of "How to Train Your EBMs" on one 2-D toy, one network, one budget:

    python experiments/toy_objectives.py train                       # recipes/ebm.py for every ebm-2d-gmm-* entry
    python experiments/toy_objectives.py figure [--from-runs]        # -E of all six side by side (card figure)

``figure`` reads the bundled weights (zoo.load) or, with --from-runs, runs/<entry>/export. Needs matplotlib
(pip install -e '.[experiments]').
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import zoo
from zoo.cards import card_asset
from zoo.data import load_tensor
from zoo.training import main as train_recipe

ENTRIES = ["ebm-2d-gmm-ml", "ebm-2d-gmm-cd", "ebm-2d-gmm-sm", "ebm-2d-gmm-ssm", "ebm-2d-gmm-dsm", "ebm-2d-gmm-nce"]
LIM = 1.5


def cmd_train(args) -> None:
    for name in ENTRIES:
        train_recipe("ebm", ["--entry", name, "--output-dir", f"runs/{name}", "--log-every", "500"])


def cmd_figure(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = torch.linspace(-LIM, LIM, 121)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    data = load_tensor(zoo.get_entry(ENTRIES[0]), "test")
    fig, axes = plt.subplots(1, len(ENTRIES) + 1, figsize=(3 * (len(ENTRIES) + 1), 3.2))
    axes[0].scatter(data[:1000, 0], data[:1000, 1], s=1)
    axes[0].set_title("data (test)")
    for ax, name in zip(axes[1:], ENTRIES):
        model = zoo.load(f"runs/{name}/export" if args.from_runs else name)
        with torch.no_grad():
            e = model.energy(pts)
        log_density = (-(e - e.min())).clamp_min(-8.0)  # -E, its top 8 nats: every mode shows, not just the deepest
        ax.imshow(log_density.view(121, 121), origin="lower", extent=[-LIM, LIM, -LIM, LIM], cmap="magma")
        ax.set_title(f"{name.removeprefix('ebm-2d-gmm-')}: -E (top 8 nats)")
    for ax in axes:
        ax.set_xlim(-LIM, LIM), ax.set_ylim(-LIM, LIM), ax.set_aspect("equal"), ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    outs = [Path(args.out) / "ebm-2d-gmm_energies.png"] if args.out else \
        [card_asset(name, "ebm-2d-gmm_energies.png") for name in ENTRIES]  # the shared notes' image, in every card
    for out in outs:
        fig.savefig(out, dpi=70)
        print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("train").set_defaults(func=cmd_train)
    s = sub.add_parser("figure")
    s.add_argument("--from-runs", action="store_true")
    s.add_argument("--out", default=None, help="default: assets/ of each entry's bundled weights folder")
    s.set_defaults(func=cmd_figure)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
