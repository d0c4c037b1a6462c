"""``python -m zoo.cards``: one writer for the bundled cards and sampler files."""
import json
import shutil

import zoo


def test_a_tuned_preset_reaches_the_bundled_weights_but_a_new_default_waits_for_a_rescore(tmp_path, monkeypatch, capsys):
    from zoo import cards, hub

    folder = tmp_path / "ebm-zoo" / "mdsm-cifar10"
    shutil.copytree(hub.BUNDLED_MIRROR / "ebm-zoo" / "mdsm-cifar10", folder, ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setattr(hub, "BUNDLED_MIRROR", tmp_path)
    path, entry = folder / "sampler_config.json", zoo.get_entry("mdsm-cifar10")
    bundled = json.loads(path.read_text())
    bundled["presets"]["fast"]["t_max"] = 99.0  # a preset the entry no longer has: rewritten from the entry
    path.write_text(json.dumps(bundled))
    assert cards.main([]) == 0 and json.loads(path.read_text()) == entry.sampler_config_json()
    bundled = json.loads(path.read_text())
    bundled["default"]["t_max"] = 99.0  # the published numbers were measured under another default: not overwritten
    path.write_text(json.dumps(bundled))
    before = path.read_text()
    assert cards.main([]) == 1 and path.read_text() == before
    out = capsys.readouterr().out
    assert "default sampler of mdsm-cifar10 differs" in out and "zoo campaign rescore" in out
