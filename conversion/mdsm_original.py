"""Convert an original MDSM checkpoint (reference code, Res12_Quadratic / Res18_Quadratic saved under
nn.DataParallel) into a zoo Hub-layout folder (config.json + model.safetensors + README.md).

    python conversion/mdsm_original.py path/to/netE_270000.pt out/ [--entry mdsm-cifar10-resnet18]

The architecture is read off the state-dict keys; anything unknown (e.g. the SE/Swish variant that the
reference repo's sample.py builds) is refused with the offending keys listed. Files are read with
torch.load(weights_only=True) only.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import torch

import zoo
from zoo.cards import build_card
from zoo.registry import get_entry

BLOCK_NAMES = {12: ["rb1", "rbc1", "rb2", "rbc2", "rb3", "rbc3"],
               18: ["rb1", "rbc1", "rbc11", "rb2", "rbc2", "rbc22", "rb3", "rbc3", "rbc33"]}
# original suffix (within a block) -> zoo suffix, for down ("rb") and same-width ("rbc") blocks
DOWN_KEYS = {"conv_1.conv.weight": "conv_1.weight", "conv_2.conv.conv.weight": "conv_2.weight",
             "conv_2.conv.conv.bias": "conv_2.bias", "conv_shortcut.conv.conv.weight": "conv_shortcut.weight",
             "conv_shortcut.conv.conv.bias": "conv_shortcut.bias"}
SAME_KEYS = {"conv_1.conv.weight": "conv_1.weight", "conv_2.conv.weight": "conv_2.weight",
             "conv_2.conv.bias": "conv_2.bias", "conv_shortcut.conv.weight": "conv_shortcut.weight",
             "conv_shortcut.conv.bias": "conv_shortcut.bias"}
IGNORED = re.compile(r"^(rb|rbc)\d+\.(bn1|bn2)\.")  # unused LayerNorm parameters (normalisation was off)


class UnsupportedCheckpointError(zoo.ZooError):
    """The checkpoint is not a plain Res12_Quadratic / Res18_Quadratic state dict."""


def convert_state_dict(original: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
    """Original (DataParallel) keys -> zoo MDSMResNet keys; returns (state_dict, architecture info)."""
    state = {k.removeprefix("module."): v for k, v in original.items()}
    depth = 18 if any(k.startswith("rbc11.") for k in state) else 12
    mapping = {"conv1.conv.weight": "conv1.weight", "conv1.conv.bias": "conv1.bias"}
    for i, block in enumerate(BLOCK_NAMES[depth]):
        table = DOWN_KEYS if block.startswith("rb") and not block.startswith("rbc") else SAME_KEYS
        mapping.update({f"{block}.{src}": f"blocks.{i}.{dst}" for src, dst in table.items()})
    for name in ("ln1", "ln2", "lq"):
        mapping.update({f"{name}.weight": f"head.{name}.weight", f"{name}.bias": f"head.{name}.bias"})
    unknown = sorted(k for k in state if k not in mapping and not IGNORED.match(k))
    missing = sorted(k for k in mapping if k not in state)
    if unknown or missing:
        raise UnsupportedCheckpointError(
            f"not a plain Res{depth}_Quadratic checkpoint: unknown keys {unknown[:10]}{' ...' if len(unknown) > 10 else ''}, "
            f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}. Only Res12_Quadratic / Res18_Quadratic "
            "(ELU, no normalisation) are supported; variants such as SE_Res18_Quadratic with Swish are not.")
    converted = {mapping[k]: v for k, v in state.items() if k in mapping}
    width, channels = converted["conv1.weight"].shape[:2]
    features = converted["head.ln1.weight"].shape[1]
    side = math.isqrt(features // (8 * width)) * 8
    if 8 * width * (side // 8) ** 2 != features:
        raise UnsupportedCheckpointError(f"head has {features} inputs, not 8*width*s^2 for width {width}")
    return converted, {"depth": depth, "width": int(width), "input_shape": [int(channels), side, side]}


def default_entry(arch: dict) -> str:
    channels, side, _ = arch["input_shape"]
    if channels == 1:
        return "mdsm-mnist"
    return "mdsm-celeba-resnet18" if side == 64 else "mdsm-cifar10-resnet18"


def convert(checkpoint: str | Path, out_dir: str | Path, entry_name: str | None = None) -> Path:
    original = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(original, dict) or not all(isinstance(v, torch.Tensor) for v in original.values()):
        raise UnsupportedCheckpointError(f"{checkpoint} does not hold a flat state dict of tensors")
    state, arch = convert_state_dict(original)
    entry = get_entry(entry_name or default_entry(arch))
    config = entry.config_json()
    expected = {"depth": config["architecture"]["depth"], "width": config["architecture"]["width"],
                "input_shape": config["input_shape"]}
    if arch != expected:
        raise UnsupportedCheckpointError(f"checkpoint architecture {arch} does not match entry {entry.name!r} {expected}")
    model = zoo.EnergyModel(config, sampler_config=entry.sampler_config_json())
    model.net.load_state_dict(state, strict=True)
    card = build_card(config, model.sampler_config, entry, training={
        "command": f"python conversion/mdsm_original.py {Path(checkpoint).name} {out_dir} --entry {entry.name}",
        "stats": {"source": f"the original MDSM checkpoint `{Path(checkpoint).name}` (not trained by the zoo)"}})
    return model.save_pretrained(out_dir, card=str(card))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("out_dir")
    p.add_argument("--entry", default=None, help="zoo entry for config/sampler (default: inferred from the shapes)")
    args = p.parse_args(argv)
    try:
        print(f"wrote {convert(args.checkpoint, args.out_dir, args.entry)}")
    except zoo.ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
