"""The DEEN paper's experiments (Saremi et al. 2018, Sec. 4) as reproducible commands; outputs go to the model cards.

    python experiments/deen_paper.py plots  [--out FOLDER]               # 2-D energy exp(-E) and score fields (Fig. 1 a-d)
    python experiments/deen_paper.py curl   [--out ...]                  # curl of DEEN vs a direct score MLP (Fig. 1 g-h)
    python experiments/deen_paper.py denoise --data-dir ../shared/datasets  # single-step denoising PSNR on MNIST (Fig. 2)
    python experiments/deen_paper.py cd     [--out ...]                  # CD with Langevin negatives in 2-D (Fig. 1 i-j)

Needs the bundled DEEN weights (zoo.load) and matplotlib (pip install -e '.[experiments]').
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import zoo
from zoo.cards import card_asset
from zoo.data import load_tensor
from zoo.metrics import curl_2d, psnr
from zoo.energies import MLPEnergy
from zoo.sampling import energy_and_grad
from deen_baselines import DirectScoreObjective, LangevinCDObjective, MLPScore, fit

TOYS = ["deen-2d-spiral", "deen-2d-gmm"]
LIM = 1.5


def grid(n: int = 101) -> tuple[torch.Tensor, int]:
    axis = torch.linspace(-LIM, LIM, n)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([xx.flatten(), yy.flatten()], 1), n


def plot_fields(out: Path, name: str, energy_fn, data: torch.Tensor, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts, n = grid()
    with torch.no_grad():
        e = energy_fn(pts)
    q = torch.exp(-(e - e.min())).view(n, n)
    coarse, m = grid(21)
    score = -energy_and_grad(energy_fn, coarse)[1]
    fig, ax = plt.subplots(1, 2, figsize=(9, 4.2))
    ax[0].imshow(q, origin="lower", extent=[-LIM, LIM, -LIM, LIM], cmap="magma")
    ax[0].scatter(data[:300, 0], data[:300, 1], s=1, c="cyan")
    ax[0].set_title(f"{title}: q = exp(-E)")
    ax[1].quiver(coarse[:, 0], coarse[:, 1], score[:, 0], score[:, 1])
    ax[1].set_title(f"{title}: score -grad E")
    for a in ax:
        a.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=80)
    plt.close(fig)


def cmd_plots(args) -> None:
    for name in TOYS:
        model = zoo.load(name)
        out = args.out or card_asset(name, "").parent
        plot_fields(out, f"{name}_fields", model.net, load_tensor(zoo.get_entry(name), "test"), name)
        print(f"wrote {out / (name + '_fields.png')}")


def cmd_curl(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts, n = grid(61)
    print("| data | score model | mean abs curl | max abs curl | mean abs score |\n|---|---|---|---|---|")
    fig, ax = plt.subplots(len(TOYS), 2, figsize=(8, 4 * len(TOYS)))
    for row, name in enumerate(TOYS):
        entry = zoo.get_entry(name)
        recipe = entry["recipe"]
        deen = zoo.load(name, dtype=torch.float64)
        torch.manual_seed(args.seed)
        direct = MLPScore([2], entry["model"]["architecture"]["hidden"])
        fit(direct, DirectScoreObjective(entry["model"]["sigma0"]), load_tensor(entry, "train"),
            steps=recipe["max_steps"], batch_size=recipe["batch_size"], lr=recipe["optimizer"]["lr"], seed=args.seed)
        fields = {"DEEN (-grad E, float64)": lambda x: -energy_and_grad(deen.net, x, create_graph=True)[1],
                  "direct score MLP": direct.double()}
        for col, (label, fn) in enumerate(fields.items()):
            curl = curl_2d(fn, pts.double())
            with torch.no_grad():
                mag = fn(pts.double().requires_grad_(True)).norm(dim=1).mean().item()
            print(f"| {name} | {label} | {curl.abs().mean().item():.3g} | {curl.abs().max().item():.3g} | {mag:.3g} |")
            im = ax[row, col].imshow(curl.view(n, n).float(), origin="lower", extent=[-LIM, LIM, -LIM, LIM], cmap="RdBu")
            ax[row, col].set_title(f"{name}\n{label}: curl", fontsize=9)
            fig.colorbar(im, ax=ax[row, col], fraction=0.046)
    fig.tight_layout()
    out = args.out / "deen-2d_curl.png" if args.out else card_asset("deen-2d-spiral", "deen-2d_curl.png")
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


def cmd_denoise(args) -> None:
    print("| model | noise std added | jump sigma | PSNR noisy (dB) | PSNR denoised (dB) |\n|---|---|---|---|---|")
    for name in ["deen-mnist", "deen-fashion-mnist"]:
        model = zoo.load(name)
        clean = load_tensor(zoo.get_entry(name), "test", args.data_dir)[: args.n]
        g = torch.Generator().manual_seed(args.seed)
        for noise in (model.sigma0, 0.3):
            noisy = clean + noise * torch.randn(clean.shape, generator=g)
            for jump in sorted({model.sigma0, noise}):
                print(f"| {name} | {noise:g} | {jump:g} | {psnr(noisy, clean):.2f} | {psnr(model.denoise(noisy, sigma=jump), clean):.2f} |")


def cmd_cd(args) -> None:
    print("| data | objective | E(data) - E(far points) | mass of q=exp(-E) within 0.25 of data | data covered (q > 1% of max) |\n"
          "|---|---|---|---|---|")
    pts, n = grid()
    for name in TOYS:
        entry = zoo.get_entry(name)
        data = load_tensor(entry, "train")
        torch.manual_seed(args.seed)
        cd = MLPEnergy([2], entry["model"]["architecture"]["hidden"])
        recipe = entry["recipe"]
        fit(cd, LangevinCDObjective(entry["model"]["sigma0"]), data, steps=recipe["max_steps"],
            batch_size=recipe["batch_size"], lr=recipe["optimizer"]["lr"], seed=args.seed)
        near = torch.cdist(pts, data[:2000]).min(1).values < 0.25
        for label, net in [("DEEN (zoo weights)", zoo.load(name).net), ("CD, Langevin negatives", cd)]:
            with torch.no_grad():
                e = net(pts)
                q = torch.softmax(-e, 0)
                gap = net(data[:2000]).mean() - e[~near].mean()
                covered = (net(data[:2000]) < e.min() + torch.log(torch.tensor(100.0))).float().mean()
            print(f"| {name} | {label} | {gap.item():.3g} | {q[near].sum().item():.3f} | {covered.item():.3f} |")
        out = args.out or card_asset(name, "").parent
        plot_fields(out, f"{name}_cd", cd, data, f"{name} CD")
        print(f"wrote {out / (name + '_cd.png')}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["plots", "curl", "denoise", "cd"])
    p.add_argument("--out", type=Path, default=None, help="default: assets/ of each entry's bundled weights folder")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--n", type=int, default=1000, help="test images for denoise")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    {"plots": cmd_plots, "curl": cmd_curl, "denoise": cmd_denoise, "cd": cmd_cd}[args.command](args)


if __name__ == "__main__":
    main()
