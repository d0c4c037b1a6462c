"""The export at the end of a run: a Hub-layout folder whose card is written from the actual config, command and
history (``zoo.cards``), optionally pushed to the Hub."""
from __future__ import annotations

import json
from pathlib import Path

from ..cards import build_card
from ..hub import push_folder_to_hub
from ..model import EnergyModel


def export_run(model: EnergyModel, config, stats: dict) -> Path:
    """``model`` (fp32) as ``<output_dir>/export`` with its card, the stats beside it; pushed if the run asks."""
    model.net.float()
    card = build_card(model.config, model.sampler_config, config.entry,
                      training={"command": config.command, "stats": stats})
    export = config.output_dir / "export"
    model.save_pretrained(export, card=str(card))
    (config.output_dir / "train_stats.json").write_text(json.dumps(stats, indent=2))
    if config.push_to_hub:
        print(f"pushed: {push_folder_to_hub(export, config.push_to_hub)}")
    return export
