"""The ``zoo`` command line: list, info, sample, denoise, inpaint, ood, eval, campaign, parzen. Thin: parses, calls the library, prints.
torch is imported only by the commands that need it (``zoo --help`` stays fast).

    zoo list
    zoo info mdsm-mnist
    zoo sample mdsm-mnist-small -n 64 -o samples.png --preset fast
    zoo denoise mdsm-mnist --data-dir ../shared/datasets --index 0 -n 8 --noise 0.3 -o denoised.png
    zoo inpaint mdsm-mnist --image digit.png --mask left -o inpainted.png
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

from zoo.argtypes import OneLineParser, non_negative_int, port, positive_float, positive_int
from zoo.masks import MASK_NAMES

COMPILE = {"auto": "auto", "on": True, "off": False}  # the --compile flag -> EnergyModel.sample(compile=...)


def _load_model(args):
    import zoo

    return zoo.load(args.name, revision=args.revision, device=args.device, dtype=args.dtype)


def _save_grid(x, path: str, data_range, nrow: int) -> None:
    from zoo.data import grid_image

    grid_image(x, data_range, nrow).save(path)
    print(f"wrote {path}")


def _inputs(args, model):
    """Images from --image files or from the entry's dataset (--split, --index, -n)."""
    from zoo.data import images_to_tensor, load_tensor
    from zoo.errors import InputError
    from zoo.registry import get_entry

    entry = get_entry(args.name)
    if args.image:
        return images_to_tensor(args.image, entry, model.data_range, names=[f"--image {p}" for p in args.image])
    x = load_tensor(entry, args.split, args.data_dir, limit=args.index + args.n)
    if len(x) <= args.index:
        raise InputError(f"--index {args.index} is past the end of the {args.split!r} split ({len(x)} images)")
    return x[args.index:args.index + args.n]


def cmd_list(args) -> None:
    import zoo

    rows = zoo.list(family=args.family)
    if not rows:
        from zoo.errors import ConfigError

        families = sorted({r["family"] for r in zoo.list()})
        raise ConfigError(f"--family {args.family!r}: no such family; known: {families}")
    cols = ["name", "family", "dataset", "architecture", "weights", "measured"]
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
    x = model.sample(args.n, preset=args.preset, seed=args.seed, batch_size=args.batch_size,
                     compile=COMPILE[args.compile], **overrides)
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
    import torch

    from zoo.masks import make_mask

    model = _load_model(args)
    x = _inputs(args, model).to(model.device, model.dtype)
    mask = make_mask(args.mask, x.shape, torch.Generator().manual_seed(args.seed)).to(model.device, model.dtype)
    filled = model.inpaint(x, mask, preset=args.preset, seed=args.seed, compile=COMPILE[args.compile])

    lo = model.config["data_range"][0]
    _save_grid(torch.cat([x, mask * x + (1 - mask) * lo, filled]), args.output, model.config["data_range"], nrow=len(x))


def cmd_demo(args) -> None:
    try:
        import gradio  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as err:
        from zoo.errors import ZooError

        raise ZooError(f"zoo demo needs the demo extra ({err.name} is missing): pip install -e '.[demo]'") from None
    from zoo.demo import launch

    print(f"zoo demo: http://{args.host}:{args.port} (Ctrl-C stops it)")
    launch(args.entries, data_dir=args.data_dir, port=args.port, host=args.host, device=args.device)


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


def cmd_ood(args) -> None:
    """AUROC of -E(x): the entry's test split (in-distribution) against each OOD source."""
    from zoo.evaluation.ood import ood_table
    from zoo.registry import get_entry

    model = _load_model(args)
    entry = get_entry(model.config.get("entry", args.name))  # a folder or hf-hub: repo names its entry in config.json
    table = ood_table(model, entry, args.ood, n=args.n, data_dir=args.data_dir, seed=args.seed)
    print(f"OOD detection with -E(x) of {args.name} ({table['n_in']} {table['split']} images in-distribution)")
    print("| OOD source | AUROC |\n|---|---|")
    for source, auroc in table["auroc"].items():
        print(f"| {source} | {auroc:.4f} |")


def cmd_eval(args, argv: list[str]) -> None:
    """Measure a model, write the results JSON and regenerate its card (bundled weights) from it."""
    import shlex

    from zoo.cards import mirror_card
    from zoo.evaluation import AISSettings, EvalSettings, evaluate, write_results
    from zoo.hub import BUNDLED_MIRROR
    from zoo.registry import get_entry

    from zoo.errors import InputError

    if args.output_json is not None and not Path(args.output_json).resolve().parent.is_dir():
        raise InputError(f"--output-json {args.output_json}: the folder {Path(args.output_json).resolve().parent} "
                         f"does not exist")
    model = _load_model(args).eval()
    entry = get_entry(model.config.get("entry", args.name))
    if args.name != entry.name and args.output_json is None:
        raise InputError(f"{args.name} is not the bundled {entry.name}: its numbers must not replace the published "
                         f"results of {entry.name}; pass --output-json FILE")
    settings = EvalSettings(
        metrics=tuple(args.metrics or ()), num_samples=args.num_samples, n_test=args.n_test, preset=args.preset,
        sample_batch=args.batch_size, seed=args.seed, data_dir=args.data_dir,
        ais=AISSettings(n_distributions=args.ais_distributions, hmc_steps=args.ais_hmc_steps,
                        n_leapfrog=args.ais_leapfrog, step_size=args.ais_step_size), ais_chains=args.ais_chains)
    results = evaluate(model, entry, settings, log=lambda m: print(m, file=sys.stderr))
    command = "zoo " + " ".join(shlex.quote(a) for a in argv)
    path = write_results(entry.name, results, command, model, args.output_json)
    print(f"wrote {path}")
    print(json.dumps(results, indent=1))
    readme = BUNDLED_MIRROR / entry.weights.repo_id / "README.md" if entry.weights else None
    if args.output_json is None and readme is not None and readme.parent.is_dir() and args.name == entry.name:
        readme.write_text(mirror_card(entry))
        print(f"wrote {readme}")


def cmd_campaign(args) -> None:
    """The weights campaign (``zoo.campaign``): status, run, adopt, rescore, pack, unpack."""
    from zoo import campaign
    from zoo.errors import ConfigError

    spec = campaign.load_campaign(args.file)
    if args.action == "status":
        print(campaign.format_status(campaign.status_rows(spec), spec))
    elif args.action == "run":
        until = campaign.parse_duration(args.until)
        records = campaign.run_campaign(spec, until, device=args.device, only=args.only, threads=args.threads,
                                        data_dir=args.data_dir)
        if args.pack:
            print("packed: " + ", ".join(str(p) for p in campaign.pack_states(spec, Path(args.pack), args.only)))
        print(f"{len(records)} slice(s); " + campaign.format_status(campaign.status_rows(spec), spec))
    elif args.action in ("adopt", "rescore"):
        runs = {r.name: r for r in spec.runs}
        if args.run not in runs:
            raise ConfigError(f"{args.run!r} is not a run of the campaign ({sorted(runs)})")
        if args.action == "adopt":
            campaign.adopt(runs[args.run], spec, Path(args.output_dir), command=args.command, hours=args.hours,
                           note=args.note, data_dir=args.data_dir)
        else:
            campaign.rescore(runs[args.run], spec, data_dir=args.data_dir)
        print(campaign.format_status(campaign.status_rows(spec), spec))
    elif args.action == "pack-data":
        files = campaign.pack_data(spec, Path(args.folder), args.data_dir, args.only)
        print(f"packed {sum(f.stat().st_size for f in files) / 2**20:.1f} MiB: " + ", ".join(str(f) for f in files))
    elif args.action == "pack":
        print("packed: " + ", ".join(str(p) for p in campaign.pack_states(spec, Path(args.folder), args.only)))
    else:
        print("unpacked: " + (", ".join(campaign.unpack_states(spec, Path(args.folder))) or "nothing newer"))


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="zoo", description="ebm-zoo: pretrained energy-based models",
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
        s.add_argument("--seed", type=non_negative_int, default=0, help="seed of the chain's generator (on --device)")

    def compile_arg(s):
        s.add_argument("--compile", default="auto", choices=list(COMPILE),
                       help="torch.compile the network for the chain (auto: on CUDA, and on a CPU for chains of >= 1000 steps)")

    def input_args(s):
        s.add_argument("--image", nargs="+", default=None, help="image file(s); default: the entry's dataset")
        s.add_argument("--data-dir", default=None, help="local dataset mirror (Hub layout), e.g. ../shared/datasets")
        s.add_argument("--split", default="test", help="dataset split (default: test)")
        s.add_argument("--index", type=non_negative_int, default=0, help="first dataset row")
        s.add_argument("-n", type=positive_int, default=8, help="number of dataset images")

    s = sub.add_parser("sample", help="sample a PNG grid", epilog="example: zoo sample mdsm-mnist --preset fast -n 16 -o grid.png")
    model_args(s)
    s.add_argument("-n", type=positive_int, default=64, help="number of samples (default 64)")
    s.add_argument("--nrow", type=positive_int, default=None, help="images per grid row (default: square)")
    s.add_argument("--preset", default=None, help="sampler preset (`zoo info NAME` lists them; MDSM: fast, medium, steps300, paper, lin, langevin)")
    s.add_argument("--step-size", type=positive_float, default=None, help="override the sampler's step size eps")
    s.add_argument("--batch-size", type=positive_int, default=None, help="chains per micro-batch (default: all n at once)")
    compile_arg(s)
    s.set_defaults(func=cmd_sample)
    s = sub.add_parser("denoise", help="noise images and denoise them with the single-step jump (rows: clean, noisy, denoised)")
    model_args(s)
    input_args(s)
    s.add_argument("--noise", type=positive_float, default=0.3, help="std of the Gaussian noise added")
    s.add_argument("--sigma", type=positive_float, default=None, help="sigma of the jump (default: the model's sigma0)")
    s.set_defaults(func=cmd_denoise)
    s = sub.add_parser("inpaint", help="fill a masked region (rows: original, masked, inpainted)")
    model_args(s)
    input_args(s)
    s.add_argument("--mask", default="left", choices=MASK_NAMES, help="the region to fill")
    s.add_argument("--preset", default=None,
                   help="sampler preset (default: the model's `inpaint` preset where it has one, else its default)")
    compile_arg(s)
    s.set_defaults(func=cmd_inpaint)
    s = sub.add_parser("ood", help="OOD detection: AUROC of -E(x), the entry's test images vs other sources",
                       epilog="example: zoo ood denoising-ebm-mnist --data-dir ../shared/datasets "
                              "--ood denoising-ebm-fashion-mnist noise:uniform interp")
    s.add_argument("name", help="registry entry (its test split is the in-distribution data)")
    s.add_argument("--ood", nargs="+", required=True,
                   help="OOD sources: another entry's name (its test images), noise:gaussian, noise:uniform, interp")
    s.add_argument("--data-dir", default=None, help="local dataset mirror (Hub layout)")
    s.add_argument("-n", type=positive_int, default=1000, help="images per side (default 1000)")
    s.add_argument("--device", default="cpu", help="torch device")
    s.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    s.add_argument("--revision", default=None)
    s.add_argument("--seed", type=non_negative_int, default=0)
    s.set_defaults(func=cmd_ood)
    s = sub.add_parser("eval", help="measure a model (sample quality, likelihood, denoising, inpainting, OOD, energy "
                       "ranking), write eval_results.json beside its bundled weights and regenerate its card",
                       epilog="example: zoo eval mdsm-mnist-small --data-dir ../shared/datasets --preset fast")
    s.add_argument("name", help="registry entry, a local Hub-layout folder, or hf-hub:org/repo[@revision]")
    s.add_argument("--metrics", nargs="+", default=None,
                   help="metrics by name (zoo.evaluation.METRICS: quality, accuracy, likelihood, denoising, inpainting, "
                        "ood, ranking); default: every one that applies to the entry")
    s.add_argument("--num-samples", type=positive_int, default=64, help="samples for sample quality (default 64)")
    s.add_argument("--batch-size", type=positive_int, default=64, help="chains per micro-batch (default 64)")
    s.add_argument("--preset", default=None, help="sampler preset of samples and inpainting (default: the entry's)")
    s.add_argument("--n-test", type=positive_int, default=500, help="test images for denoising / OOD / ranking / bits/dim")
    s.add_argument("--ais-distributions", type=positive_int, default=100, help="AIS intermediate distributions (paper: 10000)")
    s.add_argument("--ais-hmc-steps", type=positive_int, default=1, help="HMC transitions per distribution (paper: 10)")
    s.add_argument("--ais-leapfrog", type=positive_int, default=5, help="leapfrog steps per HMC transition")
    s.add_argument("--ais-step-size", type=positive_float, default=0.01, help="initial leapfrog step (adapted to 65%% acceptance)")
    s.add_argument("--ais-chains", type=positive_int, default=16, help="AIS chains (reverse AIS: test images)")
    s.add_argument("--data-dir", default=None, help="local dataset mirror (Hub layout)")
    s.add_argument("--output-json", default=None, help="write the results here instead of beside the bundled weights "
                   "(the card is then left alone)")
    s.add_argument("--device", default="cpu", help="torch device")
    s.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    s.add_argument("--revision", default=None)
    s.add_argument("--seed", type=non_negative_int, default=0)
    s.set_defaults(func=cmd_eval)
    s = sub.add_parser("campaign", help="the weights campaign: resumable, time-boxed training of campaign.yaml's runs",
                       epilog="examples: zoo campaign status; zoo campaign run --until 150m; "
                              "zoo campaign run --device cuda --until 8m --pack $OUT")
    s.add_argument("--file", default=None, help="campaign file (default: campaign.yaml at the repository root)")
    csub = s.add_subparsers(dest="action", required=True, metavar="{status,run,adopt,rescore,pack,pack-data,unpack}")
    c = csub.add_parser("status", help="steps, CPU/GPU hours, quality and state of each run; what runs next")
    c = csub.add_parser("run", help="train the runs round robin until the deadline (slices end with export + eval)")
    c.add_argument("--until", required=True, help="how long to run, e.g. 150m, 2h, 1h30m")
    c.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    c.add_argument("--only", nargs="+", default=None, metavar="RUN", help="only these runs")
    c.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    c.add_argument("--data-dir", default=None, help="dataset mirror (default: campaign.yaml's data_dir)")
    c.add_argument("--pack", default=None, metavar="FOLDER",
                   help="afterwards, pack each run's state into FOLDER (a GPU machine's $OUT)")
    c = csub.add_parser("adopt", help="a run trained by hand with the recipe enters the ledger like a slice: "
                                      "evaluated, recorded, published only if better")
    c.add_argument("run", help="the campaign run (its entry must already describe the run's model)")
    c.add_argument("output_dir", help="the recipe's --output-dir (train_stats.json and export/)")
    c.add_argument("--hours", type=positive_float, required=True, help="wall-clock hours the run trained (all its parts)")
    c.add_argument("--command", required=True, help="the command(s) that trained it, for the ledger and the card")
    c.add_argument("--note", default="", help="what the ledger should say about the run")
    c.add_argument("--data-dir", default=None, help="dataset mirror (default: campaign.yaml's data_dir)")
    c = csub.add_parser("rescore", help="after a change of the entry's default sampler: re-evaluate the published "
                                        "weights under it (ledger, eval_results.json, sampler_config.json, card)")
    c.add_argument("run", help="the campaign run")
    c.add_argument("--data-dir", default=None, help="dataset mirror (default: campaign.yaml's data_dir)")
    c = csub.add_parser("pack", help="each run's latest state as one file per run (for a transfer)")
    c.add_argument("folder")
    c.add_argument("--only", nargs="+", default=None, metavar="RUN")
    c = csub.add_parser("pack-data", help="the runs' datasets as the zoo's decoded cache (set $ZOO_DATA_CACHE to it)")
    c.add_argument("folder")
    c.add_argument("--data-dir", default=None, help="dataset mirror (default: campaign.yaml's data_dir)")
    c.add_argument("--only", nargs="+", default=None, metavar="RUN")
    c = csub.add_parser("unpack", help="take packed states (from a GPU machine) into the local state folder")
    c.add_argument("folder")
    s.set_defaults(func=cmd_campaign)
    s = sub.add_parser("demo", help="a local web page over the bundled models: sample, denoise, inpaint, energy, card",
                       epilog="example: zoo demo --data-dir ../shared/datasets --entries ncebm-mnist mdsm-mnist-small")
    s.add_argument("--port", type=port, default=7860, help="port (default 7860)")
    s.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    s.add_argument("--entries", nargs="+", default=None, help="entries to show (default: every image entry with bundled weights)")
    s.add_argument("--data-dir", default=None, help="dataset mirror for the test images (e.g. ../shared/datasets)")
    s.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    s.set_defaults(func=cmd_demo)
    s = sub.add_parser("parzen", help="pick sigma by the Parzen-window validation log-likelihood (DEEN)")
    s.add_argument("name", help="registry entry")
    s.add_argument("--data-dir", default=None, help="local dataset mirror (Hub layout)")
    s.add_argument("--sigmas", type=positive_float, nargs="+", default=None, help="candidate sigmas")
    s.add_argument("--n-centers", type=positive_int, default=None, help="training images used as Parzen centres")
    s.add_argument("--n-valid", type=positive_int, default=None, help="held-out training images scored")
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
            args.func(args, argv if argv is not None else sys.argv[1:]) if args.func is cmd_eval else args.func(args)
    except ZooError as err:
        print(f"zoo: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `zoo list | head`: the reader left; say nothing more (Python's documented recipe)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
