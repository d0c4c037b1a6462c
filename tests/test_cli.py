import numpy as np
import pytest
from PIL import Image

from zoo.cli import main


def test_list_shows_entries_and_weights(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("mdsm-mnist", "mdsm-fashion-mnist", "mdsm-cifar10", "mdsm-celeba"):
        assert name in out
    assert "mirror" in out and "none (random init)" in out


def test_info_prints_entry(capsys):
    assert main(["info", "mdsm-cifar10"]) == 0
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
    assert "larger than pad_to=32" in capsys.readouterr().err
    assert not (tmp_path / "d.png").exists()
