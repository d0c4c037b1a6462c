"""The converter against an independent re-implementation of the original module layout (key names from DESIGN)."""
import importlib.util

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import zoo
from conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location("mdsm_original", REPO_ROOT / "conversion" / "mdsm_original.py")
mdsm_original = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mdsm_original)


class Wrap(nn.Module):  # the reference code nests its convs one or two levels deep
    def __init__(self, inner):
        super().__init__()
        self.conv = inner


class OriginalBlock(nn.Module):
    def __init__(self, c_in, c_out, down, hw):
        super().__init__()
        self.down = down
        self.conv_1 = Wrap(nn.Conv2d(c_in, c_in, 3, padding=1, bias=False))
        conv2, short = nn.Conv2d(c_in, c_out, 3, padding=1), nn.Conv2d(c_in, c_out, 1)
        self.conv_2 = Wrap(Wrap(conv2)) if down else Wrap(conv2)
        self.conv_shortcut = Wrap(Wrap(short)) if down else Wrap(short)
        self.bn1, self.bn2 = nn.LayerNorm([c_in, hw, hw]), nn.LayerNorm([c_out, hw, hw])  # unused

    def _conv(self, m, x):
        while isinstance(m, Wrap):
            m = m.conv
        return m(x)

    def forward(self, x):
        h = self._conv(self.conv_2, F.elu(self._conv(self.conv_1, F.elu(x))))
        s = x
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + self._conv(self.conv_shortcut, s)


class OriginalRes(nn.Module):
    def __init__(self, depth, c=1, d=4, size=16):
        super().__init__()
        self.names = mdsm_original.BLOCK_NAMES[depth]
        self.conv1 = Wrap(nn.Conv2d(c, d, 3, padding=1))
        width, hw = d, size
        for name in self.names:
            down = not name.startswith("rbc")
            setattr(self, name, OriginalBlock(width, 2 * width if down else width, down, hw))
            width, hw = (2 * width, hw // 2) if down else (width, hw)
        feats = width * hw * hw
        self.ln1, self.ln2, self.lq = nn.Linear(feats, 1), nn.Linear(feats, 1), nn.Linear(feats, 1)

    def forward(self, x):
        x = self.conv1.conv(x)
        for name in self.names:
            x = getattr(self, name)(x)
        x = x.flatten(1)
        return (self.ln1(x) * self.ln2(x) + self.lq(x * x)).squeeze(1)


@pytest.mark.parametrize("depth, entry", [(12, "mdsm-mnist"), (18, "mdsm-cifar10-resnet18")])
def test_converted_model_gives_same_energies(tmp_path, depth, entry, monkeypatch):
    torch.manual_seed(0)
    channels = 1 if entry == "mdsm-mnist" else 3
    original = OriginalRes(depth, c=channels, d=4, size=32).double()
    ckpt = tmp_path / "netE.pt"
    torch.save(nn.DataParallel(original).state_dict(), ckpt)
    assert all(k.startswith("module.") for k in torch.load(ckpt, weights_only=True))
    # the tiny width differs from the entry's: point the converter at a matching entry config
    real_get_entry = mdsm_original.get_entry

    def tiny_entry(name):
        from zoo.training.args import apply_overrides

        return apply_overrides(real_get_entry(name), ["model.architecture.width=4"])

    monkeypatch.setattr(mdsm_original, "get_entry", tiny_entry)
    out = mdsm_original.convert(ckpt, tmp_path / "converted", entry)
    model = zoo.EnergyModel.from_pretrained(out, dtype=torch.float64)
    x = torch.rand(4, channels, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(model.energy(x), original(x).detach(), rtol=1e-10, atol=1e-10)
    assert model.config["entry"] == entry


def test_unknown_architecture_is_refused(tmp_path):
    original = OriginalRes(12, c=1, d=4, size=32)
    state = nn.DataParallel(original).state_dict()
    state["module.rb1.se.fc1.weight"] = torch.zeros(2, 2)  # e.g. the SE_Res18_Quadratic variant
    ckpt = tmp_path / "netE.pt"
    torch.save(state, ckpt)
    with pytest.raises(mdsm_original.UnsupportedCheckpointError, match="unknown keys.*se.fc1"):
        mdsm_original.convert(ckpt, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_architecture_mismatch_with_entry_is_refused(tmp_path):
    ckpt = tmp_path / "netE.pt"
    torch.save(nn.DataParallel(OriginalRes(12, c=1, d=4, size=32)).state_dict(), ckpt)
    with pytest.raises(mdsm_original.UnsupportedCheckpointError, match="does not match entry"):
        mdsm_original.convert(ckpt, tmp_path / "out", "mdsm-mnist")
