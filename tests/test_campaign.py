"""The weights campaign (zoo.campaign) in a sandbox: its own entries folder, mirror, cards folder and state folder, a
tiny noise-conditional entry and synthetic MNIST-shaped data (train + test)."""
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from conftest import REPO_ROOT
from zoo import campaign, results

# the real ncebm-mnist entry at a tiny size (a test's own overrides, as a campaign run's ``overrides``)
TINY = ["model.architecture.channels=4", "model.architecture.channel_mult=[1, 2]", "recipe.batch_size=8",
        "sampler.default={name: pf_ode, steps: 3, sigma_min: 0.01, sigma_max: 5.0}"]


def tiny_run(max_steps: int = 6, **kwargs) -> dict:
    return {"name": "tiny", "entry": "ncebm-mnist", "target_steps": max_steps, "slice_minutes": 5,
            "checkpoint_every": 2, "warmup_steps": 2, "eval": {"n": 16, "seed": 0},
            "overrides": TINY + [f"recipe.max_steps={max_steps}"], **kwargs}


def _write_split(folder: Path, split: str, n: int) -> None:
    import datasets
    import numpy as np
    from PIL import Image

    images = []
    for i in range(n):
        a = np.zeros((28, 28), np.uint8)
        a[4 + 5 * (i % 4): 8 + 5 * (i % 4), 6:22] = 255
        images.append(Image.fromarray(a, mode="L"))
    ds = datasets.Dataset.from_dict({"image": images, "label": [i % 4 for i in range(n)]},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "label": datasets.Value("int64")}))
    ds.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Entries (a copy of the real ones), mirror (the real classifier-mnist only), cards, state and data folders under
    tmp_path; returns (campaign spec of one tiny run, paths)."""
    from zoo import cards, hub, registry, results

    entries = tmp_path / "entries"
    shutil.copytree(REPO_ROOT / "zoo" / "entries", entries)
    monkeypatch.setattr(registry, "_all", functools.lru_cache(maxsize=1)(lambda: registry.load_entries(entries)))
    mirror = tmp_path / "mirror"
    (mirror / "ebm-zoo").mkdir(parents=True)
    (mirror / "ebm-zoo" / "classifier-mnist").symlink_to(REPO_ROOT / "hub_mirror" / "ebm-zoo" / "classifier-mnist")
    monkeypatch.setattr(hub, "BUNDLED_MIRROR", mirror)
    notes = tmp_path / "cards"
    notes.mkdir()
    for module, name in ((results, "RESULTS_DIR"), (cards, "NOTES_DIR")):
        monkeypatch.setattr(module, name, notes)
    monkeypatch.setenv("ZOO_CAMPAIGN_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ZOO_DATA_CACHE", str(tmp_path / "data-cache"))
    data = tmp_path / "data"
    (data / "ylecun" / "mnist" / "mnist").mkdir(parents=True)
    for folder in (data / "ylecun" / "mnist" / "mnist", data / "zalando-datasets" / "fashion_mnist" / "fashion_mnist"):
        folder.mkdir(parents=True, exist_ok=True)
        for split, n in (("train", 64), ("test", 32)):
            _write_split(folder, split, n)
    spec = campaign.CampaignSpec(runs=[tiny_run()], size_budget_mib=1000, data_dir=str(data), eval_reserve_minutes=0.1)
    spec.validate("test")
    yield spec, {"entries": entries, "mirror": mirror, "cards": notes, "state": tmp_path / "state", "data": data}
    registry._all.cache_clear()


def _losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records}


def test_two_slices_continue_one_run_exactly_and_publish_the_better_weights(sandbox):
    spec, paths = sandbox
    (run,) = spec.runs
    first = campaign.run_slice(run, spec, 0)  # a deadline at once: one step, checkpoint, export, eval
    assert first["start"] == "scratch" and first["steps_to"] == 1 and first["published"]
    # a full `zoo eval` of the first weights measured more than the campaign's quality group; make the second slice
    # publish whatever it scores
    measured_path = paths["mirror"] / "ebm-zoo" / "ncebm-mnist" / "eval_results.json"
    measured = json.loads(measured_path.read_text())
    measured["results"]["ood"] = {"auroc": {"fashion": 0.5}}
    measured["provenance"]["ood"] = measured["provenance"]["quality"]
    measured_path.write_text(json.dumps(measured))
    ledger = results.read_ledger("ncebm-mnist")
    ledger["published"]["fid"] = math.inf
    campaign.write_ledger("ncebm-mnist", ledger)
    second = campaign.run_slice(run, spec, 600)  # resumes and runs to the recipe's 6 steps
    assert second["start"] == "resume" and (second["steps_from"], second["steps_to"]) == (1, 6) and second["published"]
    # the card and eval_results.json describe only what was measured on the weights they sit beside
    assert sorted(json.loads(measured_path.read_text())["results"]) == ["quality", "sampling"]
    # the same losses and weights as one uninterrupted recipe run
    straight = campaign.recipe_argv(run, spec, campaign.LocalState(paths["state"] / "straight"), [], 600, None)
    zoo_export = __import__("zoo.training", fromlist=["main"]).main("ncebm", straight)
    resumed_dir = paths["state"] / "tiny" / "run"
    resumed, uninterrupted = _losses(resumed_dir), _losses(paths["state"] / "straight" / "run")
    assert sorted(uninterrupted) == [2, 4, 6] and {k: resumed[k] for k in uninterrupted} == uninterrupted
    from safetensors.torch import load_file

    a, b = load_file(str(zoo_export / "model.safetensors")), load_file(str(resumed_dir / "export" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the ledger, the sha pins, the eval JSON and the card; the bundled weights load by name
    ledger = results.read_ledger("ncebm-mnist")
    assert [s["steps_to"] for s in ledger["slices"]] == [1, 6]
    published = ledger["published"]
    assert published["steps"] == 6
    m = zoo.load("ncebm-mnist")
    assert m.net.unet.inp.weight.dtype == torch.float32 and m.sample(2, seed=0).shape == (2, 1, 32, 32)
    card = (paths["mirror"] / "ebm-zoo" / "ncebm-mnist" / "README.md").read_text()
    assert "## Campaign history" in card and "| cpu | scratch | 0 -> 1 |" in card
    assert all(0 < s["core_hours"] < 1 for s in ledger["slices"]) and f"| {ledger['slices'][1]['core_hours']:.2f} |" in card
    assert "| cpu | resume | 1 -> 6 |" in card
    measured = json.loads((paths["mirror"] / "ebm-zoo" / "ncebm-mnist" / "eval_results.json").read_text())  # with the weights
    assert measured["command"].startswith("zoo eval ncebm-mnist") and measured == zoo.evaluation.read_results("ncebm-mnist")
    rows = campaign.status_rows(spec)
    assert rows[0]["steps"] == 6 and rows[0]["last_fid"] == second["fid"]
    assert "every run is at its target" in campaign.format_status(rows, spec)


def test_a_fresh_machine_warm_starts_from_the_mirror_and_a_worse_eval_publishes_nothing(sandbox):
    spec, paths = sandbox
    (run,) = spec.runs
    campaign.run_slice(run, spec, 0)
    shutil.rmtree(paths["state"])  # a new machine: only the committed mirror and ledger remain
    weights = paths["mirror"] / "ebm-zoo" / "ncebm-mnist" / "model.safetensors"
    before = weights.read_bytes()
    ledger = results.read_ledger("ncebm-mnist")
    ledger["published"]["fid"] = 0.0  # nothing can beat it
    campaign.write_ledger("ncebm-mnist", ledger)
    start, argv, steps_before = campaign.start_of(run, campaign.LocalState(paths["state"] / "tiny"), ledger)
    assert start == "warm start" and argv[:2] == ["--init-from", str(weights.parent)] and steps_before == 1
    record = campaign.run_slice(run, spec, 0)
    assert record["start"] == "warm start" and record["steps_from"] == 1 and not record["published"]
    assert weights.read_bytes() == before
    assert results.read_ledger("ncebm-mnist")["published"]["fid"] == 0.0


def test_the_size_budget_refuses_an_oversized_publish(sandbox):
    spec, paths = sandbox
    spec.size_budget_mib = 1  # the repository's tracked tree alone is larger
    with pytest.raises(campaign.BudgetError, match="over the campaign's size budget of 1 MiB"):
        campaign.run_slice(spec.runs[0], spec, 0)
    assert not (paths["mirror"] / "ebm-zoo" / "ncebm-mnist").exists()
    assert (paths["entries"] / "ncebm-mnist.yaml").read_text() == (REPO_ROOT / "zoo/entries/ncebm-mnist.yaml").read_text()
    assert results.read_ledger("ncebm-mnist")["published"] is None


def test_the_deadline_is_kept_with_the_export_and_eval_done(sandbox):
    spec, paths = sandbox
    spec.runs = [campaign.build(campaign.RunSpec, tiny_run(10**6), "test")]
    start = time.time()
    records = campaign.run_campaign(spec, 25)
    assert len(records) == 1 and records[0]["steps_to"] > 1 and time.time() - start < 25 + 15
    assert (paths["state"] / "tiny" / "run" / "export" / "model.safetensors").is_file()



def test_after_its_first_slice_a_run_starts_no_slice_too_short_to_be_worth_its_evaluation(sandbox, monkeypatch):
    spec, paths = sandbox
    spec.runs = [campaign.build(campaign.RunSpec, tiny_run(10**6, slice_minutes=0.05), "test")]  # 3-second slices
    messages = []
    assert len(campaign.run_campaign(spec, 25, log=messages.append)) == 1
    assert any("too short for another slice" in m for m in messages)
    monkeypatch.setattr(campaign, "MIN_LATER_SLICE_S", 1)
    assert len(campaign.run_campaign(spec, 25, log=messages.append)) >= 2

def test_a_failing_run_is_skipped_and_the_others_go_on(sandbox):
    spec, paths = sandbox
    broken = campaign.build(campaign.RunSpec, tiny_run(name="broken", entry="ncebm-fashion-mnist",
                                                       overrides=TINY + ["recipe.max_steps=6",
                                                                         "recipe.optimizer.lr=1.0e+30"]), "test")
    spec.runs = [broken, spec.runs[0]]
    messages = []
    records = campaign.run_campaign(spec, 60, log=messages.append)
    assert any("broken: slice failed" in m and "diverged" in m for m in messages)
    assert [r["steps_to"] for r in records] == [6]  # the tiny run still trained to its target


def test_kill_9_mid_slice_resumes_from_the_last_checkpoint(sandbox, tmp_path):
    spec, paths = sandbox
    spec.runs = [campaign.build(campaign.RunSpec, tiny_run(100_000), "test")]
    campaign.run_slice(spec.runs[0], spec, 0)  # local state at step 1 (in the sandbox)
    campaign_file = tmp_path / "campaign.yaml"
    campaign_file.write_text(yaml.safe_dump({"state_dir": str(paths["state"]), "data_dir": str(paths["data"]),
                                             "runs": [tiny_run(100_000)]}))
    # another process resumes it and is killed mid-slice, after two more checkpoints
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", "campaign", "--file", str(campaign_file), "run",
                             "--until", "10m"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    local = campaign.LocalState(paths["state"] / "tiny")
    deadline = time.time() + 240
    while time.time() < deadline and local.step() < 4 and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = local.step()
    assert killed_at >= 4, proc.stderr.read().decode()[-2000:]
    record = campaign.run_slice(spec.runs[0], spec, 0)
    assert record["start"] == "resume" and record["steps_from"] == killed_at and record["steps_to"] == killed_at + 1


def test_the_gpu_transfer_stays_within_the_limits_and_unpacks_into_a_resumable_state(sandbox, tmp_path):
    spec, paths = sandbox
    (run,) = spec.runs
    campaign.run_slice(run, spec, 0)
    files = campaign.pack_states(spec, tmp_path / "out")
    assert len(files) <= campaign.TRANSFER_MAX_FILES
    assert all(f.stat().st_size <= campaign.TRANSFER_MAX_BYTES for f in files)
    shutil.rmtree(paths["state"])  # the machine that continues has none of it
    assert campaign.unpack_states(spec, tmp_path / "out") == ["tiny"]
    record = campaign.run_slice(run, spec, 0)
    assert record["start"] == "resume" and record["steps_from"] == 1
    # the data travels as the decoded cache: a machine with only that folder loads the split without the parquet
    data_files = campaign.pack_data(spec, tmp_path / "carry")
    assert sorted(f.name for f in data_files) == ["test-c1-r0.npz", "train-c1-r0.npz"]
    os.environ["ZOO_DATA_CACHE"] = str(tmp_path / "carry")  # restored by the sandbox's monkeypatch
    x = zoo.data.load_tensor(zoo.get_entry("ncebm-mnist"), "test", data_dir=tmp_path / "nothing-here")
    assert x.shape == (32, 1, 32, 32)
    many = [tmp_path / f"f{i}" for i in range(campaign.TRANSFER_MAX_FILES + 1)]
    for f in many:
        f.write_bytes(b"x")
    with pytest.raises(zoo.ZooError, match="at most 8"):
        campaign.check_transfer(many)


def test_campaign_file_and_durations_are_validated(tmp_path):
    assert campaign.parse_duration("1h30m") == 5400 and campaign.parse_duration("90s") == 90
    for bad in ("", "soon", "10 minutes"):
        with pytest.raises(zoo.ConfigError, match="--until"):
            campaign.parse_duration(bad)
    path = tmp_path / "c.yaml"
    path.write_text("runs: [{name: a, entry: ncebm-mnist, slice_minutes: 0}]\n")
    with pytest.raises(zoo.ConfigError, match="slice_minutes"):
        campaign.load_campaign(path)
    path.write_text("runs: [{name: a, entry: x}, {name: a, entry: y}]\n")
    with pytest.raises(zoo.ConfigError, match="each run needs its own name"):
        campaign.load_campaign(path)
    path.write_text("runs: [{name: a, entry: x}, {name: b, entry: x}]\n")
    with pytest.raises(zoo.ConfigError, match="each run needs its own entry"):
        campaign.load_campaign(path)
    assert [r.name for r in campaign.load_campaign().runs][0] == "ncebm-mnist"  # the repository's own file parses


def test_the_prepared_device_command_runs_end_to_end_on_cpu(sandbox, tmp_path, monkeypatch, capsys):
    """The README's GPU path with --device cpu as the stand-in: the state and the data packed here, unpacked into a
    fresh state folder with only the decoded-data cache (no parquet), a run that packs its result for the way back,
    and the unpack that continues it here."""
    from zoo.cli import main as cli

    spec, paths = sandbox
    campaign_file = tmp_path / "campaign.yaml"
    campaign_file.write_text(yaml.safe_dump({"state_dir": str(paths["state"]), "data_dir": str(paths["data"]),
                                             "eval_reserve_minutes": 0.1, "size_budget_mib": 1000,
                                             "runs": [tiny_run(100_000)]}))
    spec = campaign.load_campaign(campaign_file)
    campaign.run_slice(spec.runs[0], spec, 0)
    assert cli(["campaign", "--file", str(campaign_file), "pack", str(tmp_path / "carry" / "state")]) == 0
    assert cli(["campaign", "--file", str(campaign_file), "pack-data", str(tmp_path / "carry" / "data-cache")]) == 0
    # "the device": a fresh state folder and the carried data cache only
    monkeypatch.setenv("ZOO_CAMPAIGN_DIR", str(tmp_path / "device-state"))
    monkeypatch.setenv("ZOO_DATA_CACHE", str(tmp_path / "carry" / "data-cache"))
    assert cli(["campaign", "--file", str(campaign_file), "unpack", str(tmp_path / "carry" / "state")]) == 0
    assert cli(["campaign", "--file", str(campaign_file), "run", "--until", "25s", "--device", "cpu",
                "--data-dir", str(tmp_path / "no-parquet-here"), "--pack", str(tmp_path / "OUT")]) == 0
    back = sorted(p.name for p in (tmp_path / "OUT").iterdir())
    assert back == ["tiny.state.safetensors"]
    device_step = campaign.LocalState(tmp_path / "device-state" / "tiny").step()
    assert device_step > 1
    # back here: the returned file continues the run where the device left it
    monkeypatch.setenv("ZOO_CAMPAIGN_DIR", str(paths["state"]))
    assert cli(["campaign", "--file", str(campaign_file), "unpack", str(tmp_path / "OUT")]) == 0
    assert campaign.LocalState(paths["state"] / "tiny").step() == device_step
    assert "tiny" in capsys.readouterr().out


def test_a_cifar_shaped_mdsm_run_trains_resumes_and_publishes_through_the_campaign(sandbox):
    """mdsm-cifar10 (RGB 32x32, the MDSM recipe) at a tiny width: two slices (scratch, resume), the fp16 export is
    evaluated in classifier-cifar10's features and published; the bundled weights then load and sample by name."""
    import datasets
    import numpy as np
    from PIL import Image

    spec, paths = sandbox
    (paths["mirror"] / "ebm-zoo" / "classifier-cifar10").symlink_to(REPO_ROOT / "hub_mirror" / "ebm-zoo" /
                                                                    "classifier-cifar10")
    folder = paths["data"] / "uoft-cs" / "cifar10" / "plain_text"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("test", 24)):
        images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]
        ds = datasets.Dataset.from_dict({"img": images, "label": [i % 10 for i in range(n)]},
                                        features=datasets.Features({"img": datasets.Image(),
                                                                    "label": datasets.Value("int64")}))
        ds.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    run = campaign.RunSpec(name="tiny-cifar", entry="mdsm-cifar10", target_steps=4, checkpoint_every=2,
                           warmup_steps=2, eval=campaign.EvalSpec(n=8, seed=0),
                           overrides=["model.architecture.channels=4", "recipe.batch_size=8", "recipe.max_steps=4",
                                      "sampler.default={name: annealed_langevin, n_hold: 1, n_anneal: 2, n_final: 1}"])
    spec.runs = [run]
    first = campaign.run_slice(run, spec, 0)
    second = campaign.run_slice(run, spec, 600)
    assert (first["start"], first["steps_to"], first["published"]) == ("scratch", 1, True)
    assert (second["start"], second["steps_from"], second["steps_to"]) == ("resume", 1, 4)
    assert math.isfinite(second["fid"]) and second["fid_real_data"] >= 0
    m = zoo.load("mdsm-cifar10")
    assert m.sample(2, seed=0).shape == (2, 3, 32, 32)
    measured = json.loads((paths["mirror"] / "ebm-zoo" / "mdsm-cifar10" / "eval_results.json").read_text())
    assert measured["results"]["quality"]["features"] == "classifier-cifar10"


def test_the_least_recently_trained_run_goes_first(sandbox):
    """Across sessions every run gets its turn: never-trained runs first, then the oldest last slice; priority breaks
    ties."""
    spec, _ = sandbox
    a, b, c = (campaign.RunSpec(name=n, entry=e) for n, e in (("a", "ncebm-mnist"), ("b", "ncebm-fashion-mnist"),
                                                               ("c", "ncebm-cifar10")))
    for entry, date in (("ncebm-mnist", "2026-12-01 01:00"), ("ncebm-fashion-mnist", "2026-11-30 09:00")):
        campaign.write_ledger(entry, {"entry": entry, "published": None, "slices": [
            {"date": date, "device": "cpu", "start": "scratch", "steps_from": 0, "steps_to": 10, "hours": 0.1,
             "fid": 1.0, "fid_real_data": 0.1, "n": 8, "published": False, "command": "x"}]})
    assert [r.name for r in campaign.slice_order([a, b, c])] == ["c", "b", "a"]
    ledger = results.read_ledger("ncebm-fashion-mnist")  # a rescore (no training) does not take b's turn
    ledger["slices"].append({**ledger["slices"][0], "date": "2026-12-02 00:00", "start": "rescore", "hours": 0.0})
    campaign.write_ledger("ncebm-fashion-mnist", ledger)
    assert [r.name for r in campaign.slice_order([a, b, c])] == ["c", "b", "a"]
    spec.runs = [a, b, c]
    assert "next: c -> b -> a" in campaign.format_status(campaign.status_rows(spec), spec)


def test_the_denoising_ebm_run_trains_only_the_reconstruction_stage_and_warm_starts_from_its_weights(sandbox):
    """campaign.yaml's denoising-ebm-mnist run at a tiny size: every update is Algorithm 1's reconstruction update
    (lines 2-6; no contrastive update), with an EMA of the weights; the export is evaluated and published, and a new
    machine warm-starts from it."""
    spec, paths = sandbox
    (real,) = [r for r in campaign.load_campaign().runs if r.name == "denoising-ebm-mnist"]
    tiny = ["model.architecture={class: DenoisingEBM, width: 8, latent_dim: 8}", "recipe.batch_size=8",
            "recipe.max_steps=3", "sampler.default={name: two_stage, latent_steps: 2, latent_init: codes, "
            "data_score: dae, data_sigma_max: 1.0, data_levels: 2, data_steps: 2, data_step_size: 0.001}"]
    run = campaign.RunSpec(name="tiny-debm", entry=real.entry, target_steps=6, checkpoint_every=1, warmup_steps=1,
                           eval=campaign.EvalSpec(n=8, seed=0), overrides=real.overrides + tiny)
    from zoo.objectives.base import build_objective
    from zoo.training.args import apply_overrides

    entry = apply_overrides(zoo.get_entry(real.entry), real.overrides)
    objective = build_objective(entry.recipe.objective, entry.model.sigma0)
    assert entry.recipe.max_steps >= real.target_steps  # the warm start's local steps never pass it
    assert not any(objective.contrastive_phase(s) for s in range(entry.recipe.max_steps))
    assert entry.recipe.ema > 0  # the campaign's runs export an EMA of the weights (campaign.yaml says why)
    spec.runs = [run]
    first = campaign.run_slice(run, spec, 600)
    assert (first["start"], first["steps_to"], first["published"]) == ("scratch", 3, True)
    logged = [json.loads(line) for line in (paths["state"] / "tiny-debm" / "run" / "metrics.jsonl").read_text().splitlines()]
    updates = [r for r in logged if "loss" in r]
    assert updates and all("dae" in r and "decoder" in r and "U_c_gap" not in r for r in updates)
    shutil.rmtree(paths["state"])  # a new machine
    second = campaign.run_slice(run, spec, 600)
    assert (second["start"], second["steps_from"], second["steps_to"]) == ("warm start", 3, 6)
    assert zoo.load("denoising-ebm-mnist").sample(2, seed=0).shape == (2, 1, 32, 32)


def test_a_start_from_scratch_begins_a_new_lineage_of_steps_and_the_hours_keep_adding_up():
    """After a change of network the run starts from scratch: its steps count from 0 again (the campaign's target and
    status), while the hours spent on the entry stay summed over every slice."""
    def piece(start, steps_from, steps_to, device="cpu"):
        return {"start": start, "steps_from": steps_from, "steps_to": steps_to, "hours": 1.0, "device": device}

    ledger = {"slices": [piece("scratch", 0, 9000), piece("resume", 9000, 17000), piece("scratch", 0, 4000),
                         piece("warm start", 4000, 6000, "cuda")]}
    assert results.totals(ledger) == {"steps": 6000, "cpu_hours": 3.0, "gpu_hours": 1.0}
    assert results.totals({"slices": ledger["slices"][:2]})["steps"] == 17000


def test_a_run_trained_by_hand_is_adopted_like_a_slice_only_for_the_model_the_entry_describes(sandbox, tmp_path):
    spec, paths = sandbox
    (run,) = spec.runs
    train = __import__("zoo.training", fromlist=["main"]).main

    def by_hand(folder, *more):
        argv = ["--entry", run.entry, "--output-dir", str(folder), "--grid-n", "0", "--data-dir", spec.data_dir]
        for item in [*run.overrides, "recipe.max_steps=2", *more]:
            argv += ["--set", item]
        train("ncebm", argv)
        return folder

    other = by_hand(tmp_path / "wider", "model.architecture.channels=6")  # not the model the campaign trains
    with pytest.raises(zoo.ConfigError, match="change the entry first"):
        campaign.adopt(run, spec, other, command="by hand", hours=0.1)
    assert results.read_ledger("ncebm-mnist")["slices"] == []
    record = campaign.adopt(run, spec, by_hand(tmp_path / "hand"), command="python recipes/ncebm.py ...", hours=0.1,
                            note="a new network")
    assert (record["start"], record["steps_from"], record["steps_to"], record["published"]) == ("scratch", 0, 2, True)
    ledger = results.read_ledger("ncebm-mnist")
    assert ledger["slices"] == [record] and ledger["published"]["steps"] == 2
    assert record["note"] == "by hand: a new network" and record["command"] == "python recipes/ncebm.py ..."
    assert zoo.load("ncebm-mnist").sample(2, seed=0).shape == (2, 1, 32, 32)  # the adopted weights, bundled and pinned
    with pytest.raises(zoo.ConfigError, match="not a finished recipe run"):
        campaign.adopt(run, spec, tmp_path / "nothing", command="x", hours=0.1)
    from zoo.cli import main

    assert main(["campaign", "adopt", "no-such-run", str(tmp_path / "hand"), "--hours", "1", "--command", "c"]) == 2
    assert main(["campaign", "rescore", "no-such-run"]) == 2


def test_a_new_default_sampler_rescores_the_published_weights_and_sets_what_the_next_slice_must_beat(sandbox):
    spec, paths = sandbox
    (run,) = spec.runs
    with pytest.raises(zoo.ConfigError, match="no published weights to rescore"):
        campaign.rescore(run, spec)
    first = campaign.run_slice(run, spec, 0)
    folder = paths["mirror"] / "ebm-zoo" / "ncebm-mnist"
    weights = (folder / "model.safetensors").read_bytes()
    hotter = "sampler.default={name: pf_ode, steps: 2, sigma_min: 0.01, sigma_max: 50.0}"
    run.overrides = [hotter if o.startswith("sampler.default=") else o for o in run.overrides]
    record = campaign.rescore(run, spec)
    assert record["start"] == "rescore" and record["steps_to"] == first["steps_to"] and record["fid"] != first["fid"]
    ledger = results.read_ledger("ncebm-mnist")
    assert ledger["published"]["fid"] == record["fid"] and ledger["published"]["steps"] == first["steps_to"]
    assert (folder / "model.safetensors").read_bytes() == weights  # the weights are not touched
    model = zoo.load("ncebm-mnist")
    assert model.sampler_config["default"]["sigma_max"] == 50.0 and model.sampler_config["default"]["steps"] == 2
    measured = zoo.evaluation.read_results("ncebm-mnist")["results"]["quality"]["model"]["fid"]
    assert round(measured, 4) == record["fid"]
    assert "| cpu | rescore | 1 -> 1 |" in (folder / "README.md").read_text()
    assert results.totals(ledger)["steps"] == 1


def test_a_publish_carries_the_presets_the_entry_gained_during_the_slice_but_not_an_unmeasured_default(sandbox):
    spec, paths = sandbox
    (run,) = spec.runs
    first = campaign.run_slice(run, spec, 0)
    export = paths["state"] / "tiny" / "run" / "export"
    folder = paths["mirror"] / "ebm-zoo" / "ncebm-mnist"
    entry = zoo.registry.get_entry("ncebm-mnist")

    def publish_again(overrides):  # the export of the slice, settled after the entry changed
        run.overrides = overrides
        ledger = results.read_ledger("ncebm-mnist")
        ledger["published"]["fid"] = math.inf
        campaign.write_ledger("ncebm-mnist", ledger)
        record = {"device": "cpu", "start": "resume", "steps_from": 1, "steps_to": 1, "hours": 0.01, "command": "c"}
        assert campaign.settle(run, spec, entry, export, record, str(paths["data"]))["published"]
        return json.loads((folder / "sampler_config.json").read_text())

    evaluated = json.loads((export / "sampler_config.json").read_text())
    assert "ode7" not in evaluated["presets"] and first["published"]
    gained = publish_again(TINY + ["recipe.max_steps=6", "sampler.presets.ode7={name: pf_ode, steps: 7}"])
    assert gained["presets"]["ode7"] == {"name": "pf_ode", "steps": 7} and gained["default"] == evaluated["default"]
    changed = publish_again(TINY + ["recipe.max_steps=6", "sampler.default={name: pf_ode, steps: 2}"])
    assert changed == evaluated  # the cFID was measured under the exported default: that is what is published
