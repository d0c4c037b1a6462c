"""``zoo demo``: a local web page over the bundled models (Gradio, the Hub's demo convention).

Sample with a sampler preset (its cost measured on this machine beside it) and watch the chain and its energy;
denoise a test image or an upload; paint a region over an image and let the energy fill it (or sketch strokes and let
it fill the rest); read an image's energy against real data and noise; read each model's card.

The page calls the public API only (``zoo.load(name).sample / denoise / inpaint / energy``, test images through
``zoo.data``). ``Demo``'s methods take and return plain values (PIL images, figures, text), so they are tested
without a browser; ``build_app`` only lays them out.

    pip install -e '.[demo]'
    zoo demo --data-dir ../shared/datasets
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from .data import grid_image, images_to_tensor, load_tensor, over_black
from .errors import DatasetNotFoundError, InputError, ZooError
from .listing import weights_status
from . import registry
from .registry import get_entry

DISPLAY = 512   # pixels of the longer side of a displayed image (small images are upscaled, nearest)
FRAMES = 8      # frames of the chain strip
FILL, KEEP = "fill the painted region", "keep my strokes, fill the rest"
QUICK_SECONDS = 30  # the page preselects the model's default sampler when 16 samples take less than this here


def demo_entries() -> list[str]:
    """Image entries with weights in the bundled mirror, classifiers left out (they are not generative models)."""
    return sorted(name for name, e in registry._all().items()
                  if e.family != "classifier" and e.data.toy is None and weights_status(e) == "mirror")


def _upscaled(image: Image.Image) -> Image.Image:
    scale = max(1, DISPLAY // max(image.size))
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


class Demo:
    """The page's functions, one per action; models are loaded once and kept."""

    def __init__(self, entries: list[str] | None = None, data_dir=None, device: str = "cpu"):
        self.entries = entries or demo_entries()
        if not self.entries:
            raise InputError("no entry with bundled weights to show (zoo list shows which have weights)")
        for name in self.entries:  # one clear error for an unknown name or one without weights, before the page starts
            if weights_status(get_entry(name)).startswith("none"):
                raise InputError(f"{name} has no weights yet (zoo list shows which entries have them)")
        self.data_dir, self.device = data_dir, device
        self._models, self._eval_seconds = {}, {}

    # ------------------------------------------------------------------ models and their data
    def model(self, name: str):
        if name not in self.entries:
            raise InputError(f"{name!r} is not on this page (entries: {self.entries})")
        if name not in self._models:
            import zoo

            self._models[name] = zoo.load(name, device=self.device)
        return self._models[name]

    def test_images(self, name: str, count: int) -> torch.Tensor:
        """The first ``count`` images of the entry's test split (train split where it has none)."""
        entry = get_entry(name)
        split = "test" if "test" in entry.data.splits else "train"
        try:
            return load_tensor(entry, split, self.data_dir, limit=count)
        except DatasetNotFoundError as err:
            raise InputError(f"no test images for {name} on this machine: start the demo with --data-dir "
                             f"(e.g. ../shared/datasets), or upload an image. ({err})") from None

    def to_tensor(self, name: str, image) -> torch.Tensor:
        """An uploaded PIL image -> (1, C, H, W) in the model's range; one clear error for what it cannot take."""
        if image is None:
            raise InputError("no image: upload one or pick a test image")
        model = self.model(name)
        return images_to_tensor([image], get_entry(name), model.data_range, names=["the upload"]).to(model.dtype)

    def show(self, name: str, x: torch.Tensor, nrow: int | None = None) -> Image.Image:
        return _upscaled(grid_image(x, self.model(name).data_range, nrow or math.ceil(math.sqrt(len(x)))))

    # ------------------------------------------------------------------ sampling
    def seconds_per_evaluation(self, name: str, batch: int = 16) -> float:
        """Measured here, once per model: one energy-gradient evaluation of a batch (the unit of a chain's cost)."""
        if name not in self._eval_seconds:
            model = self.model(name)
            x = torch.rand(batch, *model.input_shape, dtype=model.dtype)
            model.score(x)
            start = time.perf_counter()
            model.score(x)
            self._eval_seconds[name] = time.perf_counter() - start
        return self._eval_seconds[name]

    def presets(self, name: str, n: int = 16) -> tuple[list[tuple[str, str]], str]:
        """(label, preset) pairs, the default sampler first, and the preset the page preselects: the default when
        ``n`` samples take under QUICK_SECONDS here, else the quickest preset. Each label gives the chain's
        gradient evaluations and the seconds they take for ``n`` samples, measured on this machine."""
        model = self.model(name)
        per_eval = self.seconds_per_evaluation(name, n)
        costs = {preset or "default": model.sampler(preset).chain_length()
                 for preset in [None, *sorted(model.sampler_config.get("presets", {}))]}
        choices = [(f"{p} · {steps} gradient evaluations · ~{steps * per_eval:.0f} s for {n} here", p)
                   for p, steps in costs.items()]
        quick = "default" if costs["default"] * per_eval < QUICK_SECONDS else min(costs, key=costs.get)
        return choices, quick

    def sample(self, name: str, preset: str, n: int, seed: int):
        """(grid of n samples, the chain of the first 4 as a strip of frames, a plot of the energy along the chain)."""
        n, seed = int(n), int(seed)
        model = self.model(name)
        preset = None if preset in (None, "default") else preset
        every = max(1, model.sampler(preset).chain_length() // FRAMES)
        out = model.sample(n, preset=preset, seed=seed, return_trajectory=True, trajectory_every=every,
                           return_energy_trace=True)
        shown = min(n, 4)
        frames = torch.stack([f[:shown] for f in out.trajectory] + [out.samples[:shown].cpu()], dim=1)
        strip = self.show(name, frames.flatten(0, 1), nrow=frames.shape[1])
        return self.show(name, out.samples), strip, energy_trace_plot(out.energy_trace, model.noise_conditional)

    # ------------------------------------------------------------------ denoising
    def denoise(self, name: str, image, index: int, noise: float, seed: int):
        """(noisy | denoised | clean, PSNR text) for an upload, else test image ``index``, with Gaussian noise of
        std ``noise`` added; denoise() at sigma = that std for a noise-conditional energy, else at the model's own
        sigma0 (the one noise level it was trained at: MDSM's jump, DEEN's sigma)."""
        from .metrics import psnr

        model = self.model(name)
        clean = self.to_tensor(name, image) if image is not None else self._test_image(name, index)
        if not noise > 0:
            raise InputError(f"noise must be > 0, got {noise}")
        g = torch.Generator().manual_seed(int(seed))
        noisy = clean + noise * torch.randn(clean.shape, generator=g, dtype=clean.dtype)
        sigma = float(noise) if model.noise_conditional else model.sigma0
        denoised = model.denoise(noisy, sigma=sigma)
        rng = model.data_range
        text = (f"PSNR noisy {psnr(noisy, clean, rng):.2f} dB -> denoised {psnr(denoised, clean, rng):.2f} dB "
                f"(noise std {noise:g}, denoise(sigma={sigma:g}), data range {list(rng)})")
        return self.show(name, torch.cat([noisy, denoised, clean]), nrow=3), text

    def _test_image(self, name: str, index: int) -> torch.Tensor:
        index = int(index)
        x = self.test_images(name, index + 1)
        if index < 0 or index >= len(x):
            raise InputError(f"test image {index} does not exist ({len(x)} images)")
        return x[index:index + 1]

    # ------------------------------------------------------------------ inpainting
    def canvas(self, name: str, index: int, blank: bool) -> Image.Image:
        """The image to paint on: test image ``index`` (or a blank one in the data's low value), upscaled."""
        model = self.model(name)
        x = torch.full((1, *model.input_shape), model.data_range[0]) if blank else self._test_image(name, index)
        return _upscaled(grid_image(x, model.data_range, 1, padding=0))

    def inpaint_inputs(self, name: str, editor: dict | None, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, mask) from the editor's value (mask 1 = known): ``FILL`` refills the painted pixels of the background,
        ``KEEP`` keeps only the painted strokes (their values in the composite) and fills everything else."""
        if mode not in (FILL, KEEP):
            raise InputError(f"unknown inpainting mode {mode!r} (modes: {FILL!r}, {KEEP!r})")
        if not editor or editor.get("background") is None:
            raise InputError("nothing to inpaint: put an image (or a blank canvas) on the canvas and paint on it")
        background = editor["background"]
        painted = _painted(editor.get("layers") or [], background.size)
        if not painted.any():
            raise InputError("nothing painted: paint the region to fill (or the strokes to keep) first")
        model = self.model(name)
        c, h, w = model.input_shape
        lo, hi = model.data_range
        pool = lambda t: F.adaptive_avg_pool2d(t, (h, w))  # noqa: E731  display pixels -> model pixels
        p = torch.from_numpy(painted).float()[None, None]
        if mode == KEEP:  # known: the model pixels a stroke covers for the most part, at the strokes' mean value
            coverage = pool(p)
            known = coverage > 0.5
            x = pool(_pixels(editor["composite"].resize(background.size), c) * p) / coverage.clamp_min(1e-6)
        else:             # to fill: every model pixel a stroke touches
            known = F.adaptive_max_pool2d(p, (h, w)) == 0
            x = pool(_pixels(background, c))
        x = (lo + (hi - lo) * x).to(model.dtype)
        return x, known.expand(1, c, h, w).to(x.dtype)

    def inpaint(self, name: str, editor: dict | None, mode: str, preset: str, seed: int) -> Image.Image:
        """known pixels | the model's fill (``inpaint_inputs`` says what is known)."""
        model = self.model(name)
        x, mask = self.inpaint_inputs(name, editor, mode)
        preset = None if preset in (None, "default") else preset
        filled = model.inpaint(x, mask, preset=preset, seed=int(seed))
        known = mask * x + (1 - mask) * model.data_range[0]
        return self.show(name, torch.cat([known, filled]), nrow=2)

    # ------------------------------------------------------------------ energy
    def energy(self, name: str, image, n: int = 200, seed: int = 0):
        """(text, histogram): E of the upload against E of ``n`` test images and of uniform and Gaussian noise, each
        scored at x + s n (s = 0, or sigma0 for MDSM: zoo eval's OOD rule)."""
        from .evaluation.ood import ood_inputs, scoring_sigma

        model, entry = self.model(name), get_entry(name)
        x = self.to_tensor(name, image)
        real = self.test_images(name, n).to(model.dtype)
        groups = {"real test images": real,
                  "uniform noise": ood_inputs("noise:uniform", model, real, seed=seed).to(model.dtype),
                  "Gaussian noise": ood_inputs("noise:gaussian", model, real, seed=seed).to(model.dtype)}
        s, g = scoring_sigma(entry), torch.Generator().manual_seed(seed)

        def energy(z):
            return model.energy(z + s * torch.randn(z.shape, generator=g, dtype=z.dtype)).double().cpu().numpy()

        energies = {k: energy(v) for k, v in groups.items()}
        mine = float(energy(x)[0])
        below = float((energies["real test images"] <= mine).mean())
        text = (f"E(upload) = {mine:.4g}; {100 * below:.0f}% of {len(real)} real test images have a lower energy "
                f"(lower energy = more probable under the model)")
        return text, energy_histogram(energies, mine)

    def card(self, name: str) -> str:
        card = getattr(self.model(name), "card", None)
        return card or f"{name} has no card in its folder."


def _pixels(image: Image.Image, channels: int) -> torch.Tensor:
    """PIL image -> float (1, C, H, W) in [0, 1], transparency composited over black."""
    arr = np.asarray(over_black(image).convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.reshape(image.height, image.width, channels)).permute(2, 0, 1)[None]


def _painted(layers, size) -> np.ndarray:
    """bool (H, W): the pixels any layer of the editor paints (alpha > 0)."""
    painted = np.zeros(size[::-1], dtype=bool)
    for layer in layers:
        rgba = np.asarray(layer.convert("RGBA").resize(size, Image.NEAREST))
        painted |= rgba[:, :, 3] > 0
    return painted


def energy_trace_plot(trace: torch.Tensor, noise_conditional: bool = False):
    """The mean energy of the chains along the chain, with the range of the chains shaded (a noise-conditional
    energy: E(x_t, sigma_t) at each step's own noise level)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    t = trace.double().numpy()
    steps = np.arange(1, len(t) + 1)
    ax.plot(steps, t.mean(1), label="mean over chains")
    ax.fill_between(steps, t.min(1), t.max(1), alpha=0.25, label="min-max")
    ax.set(xlabel="chain step", ylabel="E(x_t, sigma_t)" if noise_conditional else "E(x_t)",
           title="energy along the chain" + (" (each step at its own sigma)" if noise_conditional else ""))
    ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def energy_histogram(energies: dict[str, np.ndarray], mark: float):
    """Histograms of each group's energies on shared bins, the image's energy as a vertical line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    values = np.concatenate([*energies.values(), [mark]])
    lo, hi = np.percentile(values, [0.5, 99.5])
    bins = np.linspace(min(lo, mark), max(hi, mark), 40)
    fig, ax = plt.subplots(figsize=(6, 3))
    for label, e in energies.items():
        ax.hist(np.clip(e, bins[0], bins[-1]), bins=bins, alpha=0.5, label=label)
    ax.axvline(mark, color="black", linewidth=2, label="your image")
    ax.set(xlabel="energy E(x) (clipped to the shown range)", ylabel="images")
    ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def page_errors(fn):
    """``fn`` for a Gradio event: the zoo's errors become a message on the page (gr.Error), not a stack trace, and
    the chain's tqdm bar becomes the page's progress bar."""
    import gradio as gr

    def run(*args, progress=gr.Progress(track_tqdm=True)):
        try:
            return fn(*args)
        except ZooError as err:
            raise gr.Error(str(err)) from None
    return run


def build_app(demo: Demo):
    """The Gradio page: one tab per action, every long action queued with a progress bar."""
    import gradio as gr

    first = demo.entries[0]
    with gr.Blocks(title="ebm-zoo demo") as app:
        gr.Markdown("# ebm-zoo: energy-based models, pretrained\nPick a model; every tab calls its public API "
                    "(`zoo.load(name).sample / denoise / inpaint / energy`).")
        entry = gr.Dropdown(demo.entries, value=first, label="model", elem_id="entry")
        with gr.Tab("Sample"):
            with gr.Row():
                choices, quick = demo.presets(first)
                preset = gr.Dropdown(choices, value=quick, label="sampler preset (cost measured here)", elem_id="preset")
                n = gr.Slider(1, 64, value=16, step=1, label="n")
                seed = gr.Number(0, precision=0, label="seed")
            go = gr.Button("Sample", variant="primary", elem_id="sample-button")
            grid = gr.Image(label="samples", type="pil", elem_id="samples")
            strip = gr.Image(label="the chain of the first samples (left to right)", type="pil")
            trace = gr.Plot(label="energy along the chain")
            go.click(page_errors(demo.sample), [entry, preset, n, seed], [grid, strip, trace])
        with gr.Tab("Denoise"):
            with gr.Row():
                upload = gr.Image(label="upload (optional; else the test image below)", type="pil", image_mode=None)
                index = gr.Number(0, precision=0, label="test image")
                noise = gr.Slider(0.01, 1.0, value=0.3, step=0.01, label="noise std (data units)")
            go_d = gr.Button("Denoise", variant="primary")
            triple = gr.Image(label="noisy | denoised | clean", type="pil", elem_id="denoised")
            psnr_text = gr.Markdown()
            go_d.click(page_errors(demo.denoise), [entry, upload, index, noise, seed], [triple, psnr_text])
        with gr.Tab("Inpaint"):
            with gr.Row():
                index_i = gr.Number(0, precision=0, label="test image")
                blank = gr.Checkbox(False, label="blank canvas (sketch strokes)")
                load_canvas = gr.Button("Put on the canvas")
            editor = gr.ImageEditor(type="pil", label="paint here", elem_id="canvas", brush=gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed"),
                                    layers=False, transforms=())
            mode = gr.Radio([FILL, KEEP], value=FILL, label="what the paint means")
            go_i = gr.Button("Inpaint", variant="primary")
            filled = gr.Image(label="known pixels | filled by the energy", type="pil", elem_id="filled")
            load_canvas.click(page_errors(demo.canvas), [entry, index_i, blank], editor)
            go_i.click(page_errors(demo.inpaint), [entry, editor, mode, preset, seed], filled)
        with gr.Tab("Energy"):
            upload_e = gr.Image(label="an image", type="pil", image_mode=None)
            go_e = gr.Button("Score", variant="primary")
            energy_text = gr.Markdown()
            histogram = gr.Plot(label="energy: your image against real data and noise")
            go_e.click(page_errors(demo.energy), [entry, upload_e], [energy_text, histogram])
        with gr.Tab("Card"):
            card = gr.Markdown(demo.card(first))
        def pick(name):
            choices, quick = demo.presets(name)
            return gr.Dropdown(choices=choices, value=quick), demo.card(name)

        entry.change(page_errors(pick), entry, [preset, card])
    return app.queue(default_concurrency_limit=1)


def launch(entries=None, data_dir=None, port: int = 7860, host: str = "127.0.0.1", device: str = "cpu", block=True):
    """Build and serve the page; ``block=False`` returns the running app (tests)."""
    app = build_app(Demo(entries, data_dir=data_dir, device=device))
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True)
    return app
