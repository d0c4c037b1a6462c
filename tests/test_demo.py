"""zoo demo (zoo/demo.py): the page's functions without a browser, then the page itself in headless Chromium."""
import io
import re
import shutil
import socket

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

pytest.importorskip("gradio", reason="the demo extra is not installed (pip install -e '.[demo]')")
pytest.importorskip("matplotlib", reason="the demo extra is not installed (pip install -e '.[demo]')")

from zoo.demo import FILL, KEEP, Demo, demo_entries, page_errors  # noqa: E402
from zoo.errors import InputError  # noqa: E402

ENTRY = "ncebm-mnist"  # bundled, and the smallest of the noise-conditional image models


@pytest.fixture(scope="module")
def demo():
    from conftest import SHARED_DATA

    return Demo([ENTRY, "mdsm-mnist-small"], data_dir=SHARED_DATA)


def digit(size=28, mode="L") -> Image.Image:
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).line([(size // 2, 4), (size // 2, size - 4)], fill=255, width=3)
    return img.convert(mode)


def test_entries_are_the_bundled_image_models():
    names = demo_entries()
    assert ENTRY in names and "mdsm-mnist-small" in names
    assert not any(n.startswith("classifier-") or "2d" in n for n in names)
    with pytest.raises(InputError, match="no weights"):
        Demo(["mdsm-cifar10-resnet18"])


def test_presets_carry_their_measured_cost(demo):
    choices, quick = demo.presets(ENTRY)
    assert choices[0][1] == "default" and {"ode10", "ode35"} <= {v for _, v in choices}
    cost = {v: int(re.search(r"(\d+) gradient evaluations", label).group(1)) for label, v in choices}
    assert cost["ode10"] == 19 and cost["ode35"] == 69  # Heun: two evaluations a step, one for the last
    assert demo.seconds_per_evaluation(ENTRY) > 0
    demo._eval_seconds[ENTRY] = 0.01                    # as if each evaluation took 10 ms here (not timed: a busy
    assert demo.presets(ENTRY)[1] == "default"          # CPU must not decide the test): the default is preselected
    demo._eval_seconds["mdsm-mnist-small"] = 1.0        # as if each evaluation took a second here
    _, quick = demo.presets("mdsm-mnist-small")
    assert quick == "fast"                              # the quickest preset is preselected instead


def test_sample_gives_a_grid_a_chain_strip_and_an_energy_trace(demo):
    grid, strip, fig = demo.sample(ENTRY, "ode10", 4, 0)
    again, _, _ = demo.sample(ENTRY, "ode10", 4, 0)
    assert np.array_equal(np.asarray(grid), np.asarray(again))  # the seed fixes the page's samples
    assert grid.width == grid.height and grid.width >= 256      # 2x2 grid, upscaled to be visible
    assert np.asarray(grid).std() > 10                          # not a blank image
    assert strip.width > 1.5 * strip.height                     # >= 6 frames left to right, 4 chains down
    (line,) = fig.axes[0].get_lines()
    assert len(line.get_xdata()) == 10                           # one energy per ODE step


def test_denoise_an_upload_and_a_test_image(demo, shared_data):
    triple, text = demo.denoise(ENTRY, None, 3, 0.3, 0)
    noisy, denoised = map(float, re.findall(r"([\d.]+) dB", text))
    assert denoised > noisy + 5
    assert triple.width > 2.5 * triple.height                   # noisy | denoised | clean
    _, text = demo.denoise(ENTRY, digit(), 0, 0.3, 0)            # an upload, 28x28 like MNIST (padded)
    assert "denoise(sigma=0.3)" in text
    _, text = demo.denoise("mdsm-mnist-small", digit(), 0, 0.3, 0)
    assert "denoise(sigma=0.1)" in text                          # MDSM: its own sigma0, the one it was trained at
    with pytest.raises(InputError, match="does not exist"):
        demo.denoise(ENTRY, None, 10**6, 0.3, 0)


@pytest.mark.parametrize("upload, message", [
    (digit(100), "100x100 pixels"),                                            # wrong size: refused, not resized
    (io.BytesIO(b"not an image at all"), "not a readable image"),
    (None, "no image"),
])
def test_bad_uploads_get_one_clear_message(demo, upload, message):
    with pytest.raises(InputError, match=message):
        demo.to_tensor(ENTRY, upload)


def test_a_four_channel_png_is_composited_over_black(demo):
    rgba = digit(mode="RGBA")
    arr = np.asarray(rgba).copy()
    arr[..., 3] = np.where(arr[..., 0] > 0, 255, 0)  # transparent background, opaque stroke
    arr[..., :3][arr[..., 3] == 0] = 255             # white but fully transparent: must not show
    x = demo.to_tensor(ENTRY, Image.fromarray(arr, "RGBA"))
    assert x.shape == (1, 1, 32, 32)
    assert x.max() == 1.0 and (x == 0).float().mean() > 0.8


def editor_value(canvas: Image.Image, box) -> dict:
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle(box, fill=(255, 255, 255, 255))
    composite = canvas.convert("RGBA")
    composite.alpha_composite(layer)
    return {"background": canvas, "layers": [layer], "composite": composite}


def test_inpaint_fills_what_is_painted_and_keeps_the_rest(demo, shared_data):
    canvas = demo.canvas(ENTRY, 0, blank=False)
    w, h = canvas.size
    editor = editor_value(canvas, (0, 0, w // 2 - 1, h - 1))      # paint the left half
    x, mask = demo.inpaint_inputs(ENTRY, editor, FILL)
    assert mask[..., :16].sum() == 0 and mask[..., 16:].min() == 1
    assert torch.allclose(x, demo.test_images(ENTRY, 1), atol=1e-6)  # the canvas round-trips to the test image
    known = demo.model(ENTRY).inpaint(x, mask, preset="ode10", seed=0)
    assert torch.equal(known * mask, x * mask)                    # known pixels stay
    shown = demo.inpaint(ENTRY, editor, FILL, "ode10", 0)
    assert shown.width > 1.9 * shown.height                       # known | filled


def test_sketch_on_a_blank_canvas_keeps_the_strokes(demo):
    canvas = demo.canvas(ENTRY, 0, blank=True)
    w, h = canvas.size
    editor = editor_value(canvas, (w // 2 - 8, h // 4, w // 2 + 8, 3 * h // 4))  # one vertical stroke
    x, mask = demo.inpaint_inputs(ENTRY, editor, KEEP)
    assert 0 < mask.mean() < 0.2 and x[mask.bool()].min() == 1.0   # the stroke is known, and white
    with pytest.raises(InputError, match="nothing painted"):
        demo.inpaint_inputs(ENTRY, {"background": canvas, "layers": [], "composite": canvas}, KEEP)
    with pytest.raises(InputError, match="unknown inpainting mode"):
        demo.inpaint_inputs(ENTRY, editor, "both")


def test_energy_places_an_image_among_real_data_and_noise(demo, shared_data):
    real = Image.fromarray((demo.test_images(ENTRY, 1)[0, 0] * 255).byte().numpy(), "L")
    text, fig = demo.energy(ENTRY, real)
    assert float(re.search(r"(\d+)% of", text).group(1)) < 100
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8), "L")
    text, _ = demo.energy(ENTRY, noise)
    assert "100% of" in text                                      # every real image is more probable than noise
    assert len(fig.axes[0].patches) > 0                           # the histogram bars


def test_errors_become_a_message_on_the_page(demo):
    import gradio as gr

    with pytest.raises(gr.Error, match="no image"):
        page_errors(demo.energy)(ENTRY, None)


def test_card_is_the_model_card(demo):
    assert "ncebm-mnist" in demo.card(ENTRY) and "cFID" in demo.card(ENTRY)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_the_page_samples_in_a_real_browser(shared_data):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[browser]')")
    from zoo.demo import launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = launch([ENTRY], data_dir=shared_data, port=port, block=False)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("button", name="Sample").click()
            image = page.locator("#samples img")
            image.wait_for(timeout=120_000)
            size = page.evaluate("(img) => img.complete && [img.naturalWidth, img.naturalHeight]",
                                 image.element_handle())
            browser.close()
    finally:
        app.close()
    assert size and size[0] >= 256 and size[1] >= 256  # a loaded 4x4 grid of the 16 default samples


def test_cli_refuses_an_entry_without_weights_before_serving(capsys):
    from zoo.cli import main

    assert main(["demo", "--entries", "mdsm-cifar10-resnet18"]) == 2
    assert "mdsm-cifar10-resnet18 has no weights yet" in capsys.readouterr().err
