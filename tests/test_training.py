"""The Accelerate recipe end to end on a tiny synthetic dataset in the Hub's parquet layout."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from conftest import REPO_ROOT
from zoo.training import main

TINY = ["--set", "model.architecture.width=4", "--batch-size", "8", "--grid-n", "4", "--grid-preset", "short",
        "--set", "model.sampler_presets.short={n_hold: 1, n_anneal: 2, n_final: 1}", "--log-every", "1"]


@pytest.fixture
def synthetic_mnist(tmp_path, monkeypatch):
    """64 synthetic 28x28 'digits' (a bar at one of 4 places) as ylecun/mnist/mnist/train-*.parquet; private cache."""
    import datasets

    images = []
    for i in range(64):
        a = np.zeros((28, 28), np.uint8)
        a[4 + 5 * (i % 4): 8 + 5 * (i % 4), 6:22] = 255
        images.append(Image.fromarray(a, mode="L"))
    folder = tmp_path / "data" / "ylecun" / "mnist" / "mnist"
    folder.mkdir(parents=True)
    ds = datasets.Dataset.from_dict({"image": images, "label": [0] * 64},
                                    features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}))
    ds.to_parquet(str(folder / "train-00000-of-00001.parquet"))
    monkeypatch.setenv("ZOO_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "data"


def run(out, data_dir, *extra):
    return main("mdsm", ["--entry", "mdsm-mnist", "--data-dir", str(data_dir), "--output-dir", str(out), *TINY, *extra])


def weights(export):
    from safetensors.torch import load_file

    return load_file(str(export / "model.safetensors"))


def test_recipe_trains_checkpoints_and_exports(tmp_path, synthetic_mnist):
    export = run(tmp_path / "run", synthetic_mnist, "--max-steps", "30", "--checkpoint-every", "10", "--lr", "3e-3")
    logs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first, last = (np.mean([r["loss"] for r in part]) for part in (logs[:5], logs[-5:]))
    assert last < 0.9 * first  # the normalised loss goes down (1026 -> ~865 in 30 steps)
    assert {"E_data", "E_noise", "lr"} <= set(logs[-1])
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["step_00000020", "step_00000030"]  # keep-checkpoints 2, no temp folders left
    assert (tmp_path / "run" / "samples" / "step_00000030.png").is_file()
    model = zoo.EnergyModel.from_pretrained(export)
    assert model.config["architecture"]["width"] == 4
    card = (export / "README.md").read_text()
    assert "recipes/mdsm.py" in card and "| steps | 30 |" in card


def test_resume_equals_uninterrupted_run(tmp_path, synthetic_mnist):
    straight = run(tmp_path / "a", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--ema", "0.9")
    # stop early (as a killed job would, after its checkpoint), then resume to the same 6 steps
    run(tmp_path / "b", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--ema", "0.9", "--time-limit", "0")
    stopped_at = json.loads((tmp_path / "b" / "train_stats.json").read_text())["steps"]
    assert stopped_at < 6
    resumed = run(tmp_path / "b", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--ema", "0.9",
                  "--resume", "latest")
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # bit-equal: data order, noise, optimizer, scheduler and EMA all restored


def test_two_process_ddp_training_keeps_processes_in_sync(tmp_path, synthetic_mnist):
    # accelerate's multi-CPU mode: torchrun-style launch (--multi_gpu) + ACCELERATE_USE_CPU -> gloo backend
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO_ROOT / "recipes" / "mdsm.py"),
           "--entry", "mdsm-mnist", "--data-dir", str(synthetic_mnist), "--output-dir", str(tmp_path / "ddp"),
           "--max-steps", "4", "--checkpoint-every", "4", *TINY]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((tmp_path / "ddp" / "train_stats.json").read_text())
    assert stats["processes"] == 2
    first, second = stats["parameter checksum per process"]
    assert first == second  # DDP (with double backprop) kept both processes on the same weights
    exported = zoo.EnergyModel.from_pretrained(tmp_path / "ddp" / "export")
    assert sum(p.double().sum().item() for p in exported.parameters()) == pytest.approx(first, rel=1e-12)
    logs = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(logs) == 4 and all(json.loads(line)["loss"] > 0 for line in logs)


def test_bad_override_and_family_mismatch(tmp_path, synthetic_mnist):
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        run(tmp_path / "x", synthetic_mnist, "--set", "nonsense")
    with pytest.raises(SystemExit, match="not a section"):
        run(tmp_path / "x", synthetic_mnist, "--set", "nosuch.key=1")


def test_bf16_autocast_grad_accumulation_and_push_to_hub(tmp_path, synthetic_mnist, hub):
    # a separate process: accelerate's AcceleratorState is a per-process singleton (mixed precision cannot change)
    cmd = [sys.executable, str(REPO_ROOT / "recipes" / "mdsm.py"), "--entry", "mdsm-mnist", "--data-dir", str(synthetic_mnist),
           "--output-dir", str(tmp_path / "bf16"), *TINY, "--max-steps", "4", "--checkpoint-every", "4", "--grid-n", "0",
           "--mixed-precision", "bf16", "--grad-accum", "2", "--push-to-hub", "me/tiny-recipe"]
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    export = tmp_path / "bf16" / "export"
    logs = [json.loads(line) for line in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    assert len(logs) == 4 and all(np.isfinite(r["loss"]) for r in logs)
    stats = json.loads((tmp_path / "bf16" / "train_stats.json").read_text())
    assert stats["mixed precision"] == "bf16"
    assert sorted(hub.repos["me/tiny-recipe"]) == ["README.md", "config.json", "model.safetensors"]
    pushed = zoo.EnergyModel.from_pretrained("me/tiny-recipe")
    local = zoo.EnergyModel.from_pretrained(export)
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(pushed.energy(x), local.energy(x))
