"""The ``zoo`` command line: list, info, sample, denoise, inpaint, parzen. Thin: parses, calls the library, prints.
torch is imported only by the commands that need it (``zoo --help`` stays fast).

    zoo list
    zoo info mdsm-mnist
    zoo sample mdsm-mnist-small -n 64 -o samples.png --preset fast
    zoo denoise mdsm-mnist --data-dir ../shared/datasets --index 0 -n 8 --noise 0.3 -o denoised.png
    zoo inpaint mdsm-mnist --image digit.png --mask left -o inpainted.png
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

MASKS = ("left", "right", "top", "bottom", "center")


def _load_model(args):
    import zoo

    return zoo.load(args.name, revision=args.revision, device=args.device, dtype=args.dtype)


def _save_grid(x, path: str, data_range, nrow: int) -> None:
    from torchvision.utils import save_image

    lo, hi = data_range
    save_image(((x.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1), path, nrow=nrow, padding=2)
    print(f"wrote {path}")


def _inputs(args, model):
    """Images from --image files or from the entry's dataset (--split, --index, -n)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from zoo.data import _to_array, load_tensor, preprocess
    from zoo.errors import InputError
    from zoo.registry import get_entry

    entry = get_entry(args.name)
    if args.image:
        mode = "L" if model.input_shape[0] == 1 else "RGB"
        arrays = []
        for p in args.image:
            try:
                arrays.append(_to_array(Image.open(p).convert(mode), entry.data.resize))
            except (OSError, UnidentifiedImageError) as err:
                raise InputError(f"--image {p}: not a readable image ({err})") from None
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise InputError(f"--image files have different sizes {sorted(shapes)}")
        x = preprocess(np.stack(arrays), entry.data, model.data_range)
        if tuple(x.shape[1:]) != model.input_shape:
            raise InputError(f"image(s) give shape {tuple(x.shape[1:])} after the entry's preprocessing; "
                             f"{args.name} expects {model.input_shape}")
        return x
    x = load_tensor(entry, args.split, args.data_dir, limit=args.index + args.n)
    if len(x) <= args.index:
        raise InputError(f"--index {args.index} is past the end of the {args.split!r} split ({len(x)} images)")
    return x[args.index:args.index + args.n]


def _mask(kind: str, shape):
    """1 = known pixel, 0 = to fill."""
    import torch

    _, _, h, w = shape
    mask = torch.ones(1, 1, h, w)
    if kind == "left":
        mask[..., : w // 2] = 0
    elif kind == "right":
        mask[..., w // 2:] = 0
    elif kind == "top":
        mask[..., : h // 2, :] = 0
    elif kind == "bottom":
        mask[..., h // 2:, :] = 0
    else:
        mask[..., h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 0
    return mask


def cmd_list(args) -> None:
    import zoo

    rows = zoo.list(family=args.family)
    cols = ["name", "family", "dataset", "architecture", "weights"]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)))


def cmd_info(args) -> None:
    import yaml

    import zoo

    print(yaml.safe_dump(zoo.info(args.name), sort_keys=False, width=120, default_flow_style=None))


def cmd_sample(args) -> None:
    model = _load_model(args)
    overrides = {"step_size": args.step_size} if args.step_size is not None else {}
    x = model.sample(args.n, preset=args.preset, seed=args.seed, batch_size=args.batch_size, **overrides)
    _save_grid(x, args.output, model.config["data_range"], nrow=args.nrow or int(math.ceil(math.sqrt(args.n))))


def cmd_denoise(args) -> None:
    from zoo.metrics import psnr

    import torch

    model = _load_model(args)
    clean = _inputs(args, model).to(model.device, model.dtype)
    gen = torch.Generator(model.device).manual_seed(args.seed)
    noisy = clean + args.noise * torch.randn(clean.shape, generator=gen, device=model.device, dtype=model.dtype)
    denoised = model.denoise(noisy, sigma=args.sigma)
    lo, hi = model.config["data_range"]
    print(f"PSNR noisy {psnr(noisy, clean, (lo, hi)):.2f} dB -> denoised {psnr(denoised, clean, (lo, hi)):.2f} dB "
          f"(noise std {args.noise})")
    _save_grid(torch.cat([clean, noisy, denoised]), args.output, (lo, hi), nrow=len(clean))


def cmd_inpaint(args) -> None:
    model = _load_model(args)
    x = _inputs(args, model).to(model.device, model.dtype)
    mask = _mask(args.mask, x.shape).to(model.device, model.dtype)
    filled = model.inpaint(x, mask, preset=args.preset, seed=args.seed)
    import torch

    lo = model.config["data_range"][0]
    _save_grid(torch.cat([x, mask * x + (1 - mask) * lo, filled]), args.output, model.config["data_range"], nrow=len(x))


def cmd_parzen(args) -> None:
    """DEEN's sigma selection: Parzen-window log-likelihood of held-out training images (validation split)."""
    from zoo.data import load_tensor
    from zoo.metrics import select_parzen_sigma
    from zoo.registry import get_entry

    from zoo.schema import ParzenSpec

    entry = get_entry(args.name)
    spec = entry.recipe.parzen or ParzenSpec()
    sigmas = args.sigmas or spec.sigmas
    n_centers, n_valid = args.n_centers or spec.n_centers, args.n_valid or spec.n_valid
    train = load_tensor(entry, "train", args.data_dir, limit=n_centers + n_valid)
    if len(train) < n_centers + n_valid:
        from zoo.errors import InputError

        raise InputError(f"the train split has {len(train)} rows, fewer than --n-centers + --n-valid")
    best, scores = select_parzen_sigma(train[:n_centers], train[n_centers:n_centers + n_valid], sigmas)
    d = train[0].numel()
    print(f"Parzen window on {n_centers} training images, validated on the next {n_valid} (d = {d})")
    print("| sigma | mean log-likelihood (nats) | bits/dim (pixels in [0,255]) |\n|---|---|---|")
    for sigma, ll in scores.items():
        bpd = -(ll - d * math.log(255.0)) / (d * math.log(2))  # density of [0,1] data rescaled to [0,255]
        print(f"| {sigma:g} | {ll:.1f} | {bpd:.3f} |" + (" <- best" if sigma == best else ""))
    print(f"best sigma: {best:g}")


def _ood_inputs(source: str, model, in_test, args):
    """OOD images: noise:gaussian, noise:uniform, interp (mixes of two in-distribution test images, as the
    Denoising-EBM paper), or another zoo entry's test split brought to this model's shape and range."""
    import torch

    from zoo.data import load_tensor
    from zoo.metrics import to_shape
    from zoo.registry import get_entry

    g = torch.Generator().manual_seed(args.seed)
    lo, hi = model.data_range
    n = len(in_test)
    if source == "noise:gaussian":
        return ((lo + hi) / 2 + (hi - lo) / 4 * torch.randn(n, *model.input_shape, generator=g)).clamp(lo, hi)
    if source == "noise:uniform":
        return lo + (hi - lo) * torch.rand(n, *model.input_shape, generator=g)
    if source == "interp":
        return 0.5 * in_test + 0.5 * in_test[torch.randperm(n, generator=g)]
    other = get_entry(source)
    split = "test" if "test" in other.data.splits else "train"
    x = load_tensor(other, split, args.data_dir, limit=n)
    return to_shape(x, other.model.data_range, model.input_shape, model.data_range)


def cmd_ood(args) -> None:
    """AUROC of -E(x): the entry's test split (in-distribution) against each OOD source."""
    from zoo.data import load_tensor
    from zoo.errors import InputError
    from zoo.metrics import ood_auroc
    from zoo.registry import get_entry

    model = _load_model(args)
    entry = get_entry(model.config.get("entry", args.name))  # a folder or hf-hub: repo names its entry in config.json
    split = "test" if "test" in entry.data.splits else "train"
    in_test = load_tensor(entry, split, args.data_dir, limit=args.n)
    if len(in_test) < 2:
        raise InputError(f"the {split!r} split of {args.name} has fewer than 2 images")
    print(f"OOD detection with -E(x) of {args.name} ({len(in_test)} {split} images in-distribution)")
    print("| OOD source | AUROC |\n|---|---|")
    for source in args.ood:
        ood = _ood_inputs(source, model, in_test, args).to(model.device, model.dtype)
        print(f"| {source} | {ood_auroc(model.energy, in_test.to(model.device, model.dtype), ood):.4f} |")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoo", description="ebm-zoo: pretrained energy-based models",
                                epilog="examples: zoo list; zoo sample mdsm-mnist-small -n 16 -o grid.png; zoo info mdsm-mnist")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="list registry entries and their weights status")
    s.add_argument("--family", default=None, help="only entries of this family (mdsm, deen, ...)")
    s.set_defaults(func=cmd_list)
    s = sub.add_parser("info", help="show an entry (architecture, sampler, recipe, weights, reported numbers)")
    s.add_argument("name", help="registry entry")
    s.set_defaults(func=cmd_info)

    def model_args(s):
        s.add_argument("name", help="registry entry, a local Hub-layout folder, or hf-hub:org/repo[@revision]")
        s.add_argument("-o", "--output", required=True, help="PNG file to write (its folder must exist)")
        s.add_argument("--revision", default=None, help="Hub revision (default: the entry's pinned one)")
        s.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
        s.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="model dtype")
        s.add_argument("--seed", type=int, default=0, help="seed of the chain's generator (on --device)")

    def input_args(s):
        s.add_argument("--image", nargs="+", default=None, help="image file(s); default: the entry's dataset")
        s.add_argument("--data-dir", default=None, help="local dataset mirror (Hub layout), e.g. ../shared/datasets")
        s.add_argument("--split", default="test", help="dataset split (default: test)")
        s.add_argument("--index", type=int, default=0, help="first dataset row")
        s.add_argument("-n", type=int, default=8, help="number of dataset images")

    s = sub.add_parser("sample", help="sample a PNG grid", epilog="example: zoo sample mdsm-mnist --preset fast -n 16 -o grid.png")
    model_args(s)
    s.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--nrow", type=int, default=None, help="images per grid row (default: square)")
    s.add_argument("--preset", default=None, help="sampler preset (`zoo info NAME` lists them; MDSM: paper, fast, lin, langevin)")
    s.add_argument("--step-size", type=float, default=None, help="override the sampler's step size eps")
    s.add_argument("--batch-size", type=int, default=None, help="chains per micro-batch (default: all n at once)")
    s.set_defaults(func=cmd_sample)
    s = sub.add_parser("denoise", help="noise images and denoise them with the single-step jump (rows: clean, noisy, denoised)")
    model_args(s)
    input_args(s)
    s.add_argument("--noise", type=float, default=0.3, help="std of the Gaussian noise added")
    s.add_argument("--sigma", type=float, default=None, help="sigma of the jump (default: the model's sigma0)")
    s.set_defaults(func=cmd_denoise)
    s = sub.add_parser("inpaint", help="fill a masked region (rows: original, masked, inpainted)")
    model_args(s)
    input_args(s)
    s.add_argument("--mask", default="left", choices=MASKS, help="the region to fill")
    s.add_argument("--preset", default=None, help="sampler preset (e.g. fast)")
    s.set_defaults(func=cmd_inpaint)
    s = sub.add_parser("ood", help="OOD detection: AUROC of -E(x), the entry's test images vs other sources",
                       epilog="example: zoo ood denoising-ebm-mnist --data-dir ../shared/datasets "
                              "--ood denoising-ebm-fashion-mnist noise:uniform interp")
    s.add_argument("name", help="registry entry (its test split is the in-distribution data)")
    s.add_argument("--ood", nargs="+", required=True,
                   help="OOD sources: another entry's name (its test images), noise:gaussian, noise:uniform, interp")
    s.add_argument("--data-dir", default=None, help="local dataset mirror (Hub layout)")
    s.add_argument("-n", type=int, default=1000, help="images per side (default 1000)")
    s.add_argument("--device", default="cpu", help="torch device")
    s.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    s.add_argument("--revision", default=None)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_ood)
    s = sub.add_parser("parzen", help="pick sigma by the Parzen-window validation log-likelihood (DEEN)")
    s.add_argument("name", help="registry entry")
    s.add_argument("--data-dir", default=None, help="local dataset mirror (Hub layout)")
    s.add_argument("--sigmas", type=float, nargs="+", default=None, help="candidate sigmas")
    s.add_argument("--n-centers", type=int, default=None, help="training images used as Parzen centres")
    s.add_argument("--n-valid", type=int, default=None, help="held-out training images scored")
    s.set_defaults(func=cmd_parzen)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = getattr(args, "output", None)
    if output is not None and not Path(output).resolve().parent.is_dir():
        print(f"zoo: error: -o {output}: the folder {Path(output).resolve().parent} does not exist", file=sys.stderr)
        return 2
    from zoo.errors import ZooError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            args.func(args)
    except ZooError as err:
        print(f"zoo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
