import numpy as np
import pytest
from PIL import Image

from zoo.cli import main


def test_list_shows_entries_and_weights(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("mdsm-mnist", "mdsm-fashion-mnist", "mdsm-cifar10", "mdsm-celeba"):
        assert name in out
    assert "mirror" in out and "none (train it" in out


def test_info_prints_entry(capsys):
    assert main(["info", "mdsm-cifar10-resnet18"]) == 0
    out = capsys.readouterr().out
    assert "fid:" in out and "31.7" in out


def test_unknown_entry_is_one_clear_error(capsys):
    assert main(["info", "mdsm-cifar"]) == 2
    assert "Did you mean: mdsm-cifar10" in capsys.readouterr().err


def test_sample_writes_png(tmp_path):
    out = tmp_path / "grid.png"
    assert main(["sample", "mdsm-mnist-small", "-n", "2", "-o", str(out)]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape[0] == 36 and img.std() > 0  # 32 px + padding, not blank


def test_denoise_and_inpaint_on_an_image_file(tmp_path, capsys):
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255  # a "1"
    path = tmp_path / "one.png"
    Image.fromarray(digit, mode="L").save(path)
    assert main(["denoise", "mdsm-mnist-small", "--image", str(path), "--noise", "0.3", "-o", str(tmp_path / "d.png")]) == 0
    assert "PSNR noisy" in capsys.readouterr().out
    assert main(["inpaint", "mdsm-mnist-small", "--image", str(path), "--mask", "top", "-o", str(tmp_path / "i.png")]) == 0
    assert (tmp_path / "d.png").is_file() and (tmp_path / "i.png").is_file()


def test_inpaint_from_dataset(tmp_path, shared_data):
    assert main(["inpaint", "mdsm-mnist-small", "--data-dir", str(shared_data), "-n", "2", "--mask", "left",
                 "-o", str(tmp_path / "i.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "i.png")).shape[0] == 3 * 34 + 2


def test_wrong_size_image_is_refused(tmp_path, capsys):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 40), np.uint8), mode="L").save(path)
    assert main(["denoise", "mdsm-mnist-small", "--image", str(path), "-o", str(tmp_path / "d.png")]) == 2
    assert "40x40 pixels; mdsm-mnist-small takes 32x32 images" in capsys.readouterr().err
    assert not (tmp_path / "d.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["sample", "mdsm-mnist-small", "-n", "1", "--device", "bogus", "-o", "x.png"], "unknown device"),
    (["sample", "mdsm-mnist-small", "-n", "1", "-o", "/no/such/folder/x.png"], "does not exist"),
    (["sample", "mdsm-cifar10-resnet18", "-n", "1", "-o", "x.png"], "no published weights"),
    (["sample", "mdsm-mnist-small", "-n", "1", "--preset", "nope", "-o", "x.png"], "unknown sampler preset"),
    (["sample", "mdsm-mnist-small", "-n", "2", "--step-size", "1", "-o", "x.png"], "diverged"),
    (["sample", "hf-hub:../../x", "-n", "1", "-o", "x.png"], "valid Hub repo id"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.png").exists()


def test_unknown_family_and_non_finite_sigma_are_one_clear_error(capsys):
    import math

    import torch

    import zoo

    assert main(["list", "--family", "nope"]) == 2
    assert "no such family" in capsys.readouterr().err
    m = zoo.load("mdsm-mnist-small")
    for sigma in (math.nan, math.inf, 0.0, -1.0):
        with pytest.raises(zoo.InputError, match="finite number > 0"):
            m.denoise(torch.rand(1, 1, 32, 32), sigma=sigma)
    with pytest.raises(zoo.InputError, match="positive weight"):
        zoo.compose(m, m, weights=[1.0, math.inf])


def test_non_image_file_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["denoise", "mdsm-mnist-small", "--image", str(bad), "-o", str(tmp_path / "d.png")]) == 2
    assert "not a readable image" in capsys.readouterr().err


def test_help_is_fast_because_torch_is_imported_lazily():
    import subprocess
    import sys

    code = "import sys; import zoo.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
