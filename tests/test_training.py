"""The Accelerate recipe end to end on a tiny synthetic dataset in the Hub's parquet layout."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import zoo
from pathlib import Path

import zoo.objectives
from conftest import REPO_ROOT, tiny_model
from zoo.training import main

TINY = ["--set", "model.architecture.width=4", "--batch-size", "8", "--grid-n", "4", "--grid-preset", "short",
        "--set", "sampler.presets.short={n_hold: 1, n_anneal: 2, n_final: 1}", "--log-every", "1"]


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
    ranking = [json.loads(line) for line in (tmp_path / "run" / "ranking.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ranking] == [10, 20, 30]  # the energy-ranking diagnostic at every checkpoint
    assert {"E_real", "E_blank", "E_half_ink", "E_samples", "real_minus_blank"} <= set(ranking[-1]["ranking"])
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


@pytest.mark.parametrize("recipe, entry, flags", [
    ("mdsm", "mdsm-mnist", TINY),  # double backprop under DDP
    ("ebm", "ebm-2d-gmm-nce", ["--batch-size", "8", "--log-every", "1"]),  # NCE's own log Z, synced with the network
])
def test_two_process_ddp_training_keeps_processes_in_sync(tmp_path, synthetic_mnist, recipe, entry, flags):
    # accelerate's multi-CPU mode: torchrun-style launch (--multi_gpu) + ACCELERATE_USE_CPU -> gloo backend
    from safetensors.torch import load_file

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO_ROOT / "recipes" / f"{recipe}.py"),
           "--entry", entry, "--data-dir", str(synthetic_mnist), "--output-dir", str(tmp_path / "ddp"),
           "--max-steps", "4", "--checkpoint-every", "4", *flags]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Grad strides do not match" not in proc.stderr
    stats = json.loads((tmp_path / "ddp" / "train_stats.json").read_text())
    assert stats["processes"] == 2
    first, second = stats["parameter checksum per process"]
    assert first == second  # DDP kept both processes on the same network and objective parameters
    exported = zoo.EnergyModel.from_pretrained(tmp_path / "ddp" / "export")
    state = load_file(str(tmp_path / "ddp" / "checkpoints" / "step_00000004" / "state.safetensors"))
    own = [v for k, v in state.items() if k == "objective.log_z"]  # the objective's parameter, if it has one
    assert len(own) == (entry == "ebm-2d-gmm-nce")
    total = sum(p.double().sum().item() for p in exported.parameters()) + sum(v.double().item() for v in own)
    assert total == pytest.approx(first, rel=1e-12)
    logs = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(logs) == 4 and all(json.loads(line)["loss"] > 0 for line in logs)


@pytest.mark.parametrize("flags, message", [
    (["--set", "nonsense"], "KEY=VALUE"),
    (["--set", "nosuch.key=1"], "not a section"),
    (["--set", "recipe.optimiser={name: adam}"], "unknown key"),
    (["--set", "model.architecture.width=[1"], "not valid YAML"),
    (["--grid-preset", "nope"], "not a sampler preset"),
    (["--set", "recipe.objective={name: mdsm, sigma_minn: 0.1}"], "unknown objective option"),
    (["--entry", "deen-mnist"], "use recipes/deen.py"),
    (["--push-to-hub", "../../x"], "valid Hub repo id"),
])
def test_bad_flags_fail_before_step_one(tmp_path, synthetic_mnist, flags, message):
    with pytest.raises(zoo.ZooError, match=message):
        run(tmp_path / "x", synthetic_mnist, "--max-steps", "1", *flags)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("flag", ["--max-steps=0", "--lr=0", "--batch-size=0", "--keep-checkpoints=0", "--lr=-1",
                                  "--grad-accum=-2", "--ema=1.5", "--time-limit=-1", "--checkpoint-every=0"])
def test_out_of_range_numbers_are_refused_by_the_parser(tmp_path, synthetic_mnist, flag, capsys):
    with pytest.raises(SystemExit):
        run(tmp_path / "x", synthetic_mnist, flag)
    err = capsys.readouterr().err
    assert f"argument {flag.split('=')[0]}" in err and "expected" in err


def test_recipe_prints_one_line_for_user_errors(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "recipes" / "mdsm.py"), "--entry", "mdsm-mnst"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "Did you mean: mdsm-mnist" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_refuses_different_settings_and_finished_runs_are_left_alone(tmp_path, synthetic_mnist):
    export = run(tmp_path / "r", synthetic_mnist, "--max-steps", "2", "--checkpoint-every", "2")
    card = (export / "README.md").read_text()
    assert "`MDSMResNet(width=4, depth=12)`" in card and "python recipes/mdsm.py" in card  # the actual config/command
    with pytest.raises(zoo.ConfigError, match="max_steps: checkpoint 2 vs now 4.*init-from"):
        run(tmp_path / "r", synthetic_mnist, "--max-steps", "4", "--resume", "latest")
    with pytest.raises(zoo.ConfigError, match="width"):
        run(tmp_path / "r", synthetic_mnist, "--max-steps", "2", "--resume", "latest", "--set", "model.architecture.width=8")
    run(tmp_path / "r", synthetic_mnist, "--max-steps", "2", "--resume", "latest")  # finished: nothing to do
    assert (export / "README.md").read_text() == card


def test_metrics_are_not_repeated_after_a_resume(tmp_path, synthetic_mnist):
    run(tmp_path / "m", synthetic_mnist, "--max-steps", "4", "--checkpoint-every", "2", "--time-limit", "0")
    run(tmp_path / "m", synthetic_mnist, "--max-steps", "4", "--checkpoint-every", "2", "--resume", "latest")
    steps = [json.loads(line)["step"] for line in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_non_finite_training_is_stopped_and_never_saved(tmp_path, synthetic_mnist):
    with pytest.raises(zoo.TrainingDivergedError, match="step"):
        run(tmp_path / "nan", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--lr", "1e30")
    assert not (tmp_path / "nan" / "export").exists()
    for ckpt in (tmp_path / "nan" / "checkpoints").glob("step_*"):  # whatever was saved is finite
        from safetensors.torch import load_file

        assert all(torch.isfinite(v).all() for v in load_file(str(ckpt / "model.safetensors")).values())
    with pytest.raises(zoo.InputError, match="non-finite"):
        model = tiny_model()
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        model.save_pretrained(tmp_path / "bad")


def test_full_disk_during_a_checkpoint_says_so_and_leaves_nothing(tmp_path):
    import errno

    from zoo.training.checkpoint import save_checkpoint

    class Main:
        is_main_process = True

        def wait_for_everyone(self):
            pass

    class FullDisk:
        def state_dict(self):
            (tmp_path / "ck" / ".tmp_step_00000007").mkdir(parents=True, exist_ok=True)
            (tmp_path / "ck" / ".tmp_step_00000007" / "state.safetensors").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(zoo.ZooError, match="step 7: the disk is full"):
        save_checkpoint(Main(), tmp_path / "ck", 7, 2, {}, {"model": FullDisk()})
    assert list((tmp_path / "ck").iterdir()) == []


@dataclasses.dataclass
class CountingBuffer(zoo.objectives.MDSMObjective):
    """An MDSM objective with replay-buffer-like state that changes the loss: resume must restore it exactly."""

    def __post_init__(self):
        self.buffer = torch.zeros(4)

    def __call__(self, model, x, ctx):
        out = super().__call__(model, x, ctx)
        self.buffer = torch.roll(self.buffer, 1)
        self.buffer[0] = torch.rand((), generator=ctx.generator, device=x.device).cpu() + ctx.step
        out.loss = out.loss * (1 + 0.01 * self.buffer.sum())
        return out

    def state_dict(self):
        return {"buffer": self.buffer.clone()}

    def load_state_dict(self, state):
        self.buffer = state["buffer"].clone()


def test_objective_state_survives_checkpoint_and_resume_bit_exactly(tmp_path, synthetic_mnist, monkeypatch):
    monkeypatch.setitem(zoo.objectives.OBJECTIVES, "counting_buffer", CountingBuffer)  # removed again after the test
    spec = ["--set", "recipe.objective={name: counting_buffer, sigma_min: 0.1, sigma_max: 3.0, spacing: geometric}"]
    straight = run(tmp_path / "a", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", *spec)
    run(tmp_path / "b", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--time-limit", "0", *spec)
    resumed = run(tmp_path / "b", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--resume", "latest", *spec)
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the buffer is in the checkpoint, and a resume with a different buffer ends elsewhere (the state matters)
    from safetensors.torch import load_file, save_file

    run(tmp_path / "c", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--time-limit", "0", *spec)
    (ckpt,) = (tmp_path / "c" / "checkpoints").glob("step_*")
    tensors = load_file(str(ckpt / "state.safetensors"))
    assert tensors["objective.buffer"].abs().sum() > 0
    tensors["objective.buffer"] = torch.zeros(4)
    save_file(tensors, str(ckpt / "state.safetensors"))
    altered = run(tmp_path / "c", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--resume", "latest",
                  *spec)
    c = weights(altered)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_pickled_checkpoint_is_never_unpickled(tmp_path, synthetic_mnist):
    """A checkpoint folder holding a pickle payload (what accelerate's format would unpickle) is refused before any
    file is unpickled, and so is a checkpoint whose settings file was removed."""
    import pickle

    run(tmp_path / "a", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--time-limit", "0")
    (ckpt,) = (tmp_path / "a" / "checkpoints").glob("step_*")
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    for name in ("state.safetensors", "state.json"):
        (ckpt / name).unlink()
    (ckpt / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(zoo.ConfigError, match="pickled checkpoints are not read"):
        run(tmp_path / "a", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--resume", str(ckpt))
    (ckpt / "run_settings.json").unlink()
    with pytest.raises(zoo.ConfigError, match="run_settings.json is missing"):
        run(tmp_path / "a", synthetic_mnist, "--max-steps", "6", "--checkpoint-every", "3", "--resume", str(ckpt))
    assert not marker.exists()


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
    assert sorted(hub.repos["me/tiny-recipe"]) == ["README.md", "config.json", "model.safetensors", "sampler_config.json"]
    pushed = zoo.EnergyModel.from_pretrained("me/tiny-recipe")
    local = zoo.EnergyModel.from_pretrained(export)
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(pushed.energy(x), local.energy(x))


def test_a_diverging_sample_grid_is_reported_not_fatal(tmp_path, capsys):
    from zoo.training.callbacks import save_sample_grid

    model = tiny_model().eval()
    model.sampler_config["presets"]["bad"] = {"step_size": 50.0, "n_hold": 2, "n_anneal": 60, "n_final": 2}
    save_sample_grid(model, tmp_path / "g.png", 2, "bad", 0)
    assert "no sample grid g.png" in capsys.readouterr().out and not (tmp_path / "g.png").exists()
    save_sample_grid(model, tmp_path / "ok.png", 2, "short", 0)
    assert (tmp_path / "ok.png").is_file()


def test_a_second_run_into_a_locked_output_dir_is_refused_with_the_holder_named(tmp_path, synthetic_mnist):
    from zoo.training.checkpoint import lock_run_folder

    holder = lock_run_folder(tmp_path / "busy")  # as a running training holds it
    with pytest.raises(zoo.ZooError, match=r"in use by another training run \(pid \d+"):
        run(tmp_path / "busy", synthetic_mnist, "--max-steps", "2", "--checkpoint-every", "2")
    holder.close()  # released (a killed process releases it too): the folder is usable again
    run(tmp_path / "busy", synthetic_mnist, "--max-steps", "2", "--checkpoint-every", "2")
    (tmp_path / "file").write_text("x")
    with pytest.raises(zoo.ConfigError, match="is a file"):
        run(tmp_path / "file", synthetic_mnist, "--max-steps", "2")
