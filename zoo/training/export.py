"""The export at the end of a run: a Hub-layout folder whose card is written from the actual config, command and
history (``zoo.cards``), optionally pushed to the Hub."""
from __future__ import annotations

import json
from pathlib import Path

from ..cards import build_card
from ..hub import push_folder_to_hub
from ..model import EnergyModel


def export_run(net, args, stats: dict, out: Path) -> Path:
    entry = args.entry_spec
    model = EnergyModel(entry.config_json(), net.float(), entry.sampler_config_json())
    card = build_card(model.config, model.sampler_config, entry, training={"command": args.command, "stats": stats})
    export = out / "export"
    model.save_pretrained(export, card=str(card))
    (out / "train_stats.json").write_text(json.dumps(stats, indent=2))
    if args.push_to_hub:
        print(f"pushed: {push_folder_to_hub(export, args.push_to_hub)}")
    return export
