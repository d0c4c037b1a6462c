"""The weights campaign: training that outlives the machine (``zoo campaign status | run | adopt | rescore | pack |
unpack``).

``campaign.yaml`` (the repository root) lists training runs in priority order: the entry, recipe overrides, the
step target and the evaluation that decides whether new weights are better. ``zoo campaign run --until 150m`` trains
them **round robin in priority order** (each run whose target is not reached gets one slice of at most its
``slice_minutes`` in turn, until the deadline), every slice ending with a checkpoint, an export, an evaluation at a
fixed n and seed, and a publish only if the metric improved.

Where a run starts (the best state that exists):
  1. its local state in the state folder (``$ZOO_CAMPAIGN_DIR`` or ``state_dir``, outside the work tree): the
     recipe's own checkpoints (safetensors + JSON, ``zoo.training.state``: read back without unpickling), resumed
     exactly; a kill -9 loses at most one checkpoint interval;
  2. else the published weights in the bundled mirror: a warm start (fresh optimizer, ``warmup_steps`` of LR
     warm-up, a new seed so that no noise is replayed);
  3. else scratch.
The committed ledger ``model_cards/<entry>.campaign.json`` keeps every slice (device, hours, steps, metric) and the
published metric, so that hours and quality accumulate across machines; the card shows it.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .errors import ConfigError, ZooError
from .results import ledger_path, read_ledger, totals
from .schema import build

REPO_ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN_FILE = REPO_ROOT / "campaign.yaml"
# What one transfer from a GPU machine may bring back (the device tool's limits).
TRANSFER_MAX_FILES, TRANSFER_MAX_BYTES = 8, 16 << 20
MIN_SLICE_S = 10  # no slice is started with less training time than this before the deadline
# nor a slice after the first of a `run` with less than this: a few minutes of training would cost a whole
# evaluation and send the run to the back of the round robin (a short --until, e.g. a GPU call, still gets one)
MIN_LATER_SLICE_S = 600


class BudgetError(ZooError):
    """A publish would take the tracked tree over the campaign's size budget."""


@dataclass
class EvalSpec:
    """The evaluation that decides whether new weights replace the published ones: ``zoo eval``'s quality metric
    (classifier-FID, lower is better) on ``n`` samples from seed ``seed`` with the entry's default sampler."""

    n: int = 500
    seed: int = 0
    metric: str = "fid"

    def validate(self, where: str) -> None:
        if self.n < 2 or self.metric != "fid":
            raise ConfigError(f"{where}: n must be >= 2 and metric 'fid' (classifier-FID), got {self.n}, {self.metric!r}")


@dataclass
class RunSpec:
    name: str
    entry: str
    overrides: list = field(default_factory=list)  # recipe --set KEY=VALUE items
    target_steps: int = 100_000
    slice_minutes: float = 60.0
    checkpoint_every: int = 500
    warmup_steps: int = 200  # LR warm-up of a warm start from the published weights
    eval: EvalSpec = field(default_factory=EvalSpec)

    def validate(self, where: str) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", self.name):
            raise ConfigError(f"{where}.name must be lowercase letters, digits, '.', '_' or '-', got {self.name!r}")
        if self.target_steps < 1 or self.slice_minutes <= 0 or self.checkpoint_every < 1 or self.warmup_steps < 0:
            raise ConfigError(f"{where}: target_steps, slice_minutes and checkpoint_every must be > 0")


@dataclass
class CampaignSpec:
    runs: list
    state_dir: str = "~/.cache/ebm-zoo/campaign"
    size_budget_mib: float = 50.0
    data_dir: str = "../shared/datasets"  # relative to the repository root
    eval_reserve_minutes: float = 3.0  # kept free before the deadline for the last export + evaluation

    def validate(self, where: str) -> None:
        for key in ("name", "entry"):  # an entry's ledger and published weights belong to one run
            values = [r.get(key) if isinstance(r, dict) else None for r in self.runs]
            if len(set(values)) != len(values):
                raise ConfigError(f"{where}: each run needs its own {key}, got {values}")
        self.runs = [build(RunSpec, r, f"{where}.runs[{i}]") for i, r in enumerate(self.runs)]


def load_campaign(path: Path | None = None) -> CampaignSpec:
    path = Path(path or CAMPAIGN_FILE)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not a readable campaign file: {err}") from None
    return build(CampaignSpec, raw, str(path))


def dataset_dir(spec: CampaignSpec, data_dir: str | None = None) -> str:
    """``data_dir`` if given, else the campaign file's ``data_dir`` (relative to the repository root)."""
    return data_dir or str((REPO_ROOT / spec.data_dir).resolve())


def state_root(spec: CampaignSpec) -> Path:
    return Path(os.environ.get("ZOO_CAMPAIGN_DIR") or spec.state_dir).expanduser()


def parse_duration(text: str) -> float:
    """'150m', '2h', '90s', '1h30m' -> seconds."""
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text.strip())
    if not text.strip() or parts is None or not any(parts.groups()):
        raise ConfigError(f"--until {text!r}: expected a duration such as 150m, 2h, 1h30m or 90s")
    h, m, s = (float(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s


# ---------------------------------------------------------------------------------------------------- the ledger
def write_ledger(entry: str, ledger: dict) -> None:
    from .hub import write_atomic

    write_atomic(ledger_path(entry), lambda p: Path(p).write_text(json.dumps(ledger, indent=1) + "\n"))


# ---------------------------------------------------------------------------------------------------- local state
@dataclass
class LocalState:
    """A run's state folder: ``run/`` is the recipe's output dir (checkpoints, metrics, export); ``local.json`` the
    recipe arguments this state was started with and the total steps before it (a warm start continues a count)."""

    folder: Path

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    @property
    def info_path(self) -> Path:
        return self.folder / "local.json"

    def info(self) -> dict | None:
        return json.loads(self.info_path.read_text()) if self.info_path.is_file() else None

    def latest_checkpoint(self) -> Path | None:
        from .training.checkpoint import checkpoints

        found = checkpoints(self.run_dir / "checkpoints") if (self.run_dir / "checkpoints").is_dir() else []
        return found[-1] if found else None

    def step(self) -> int:
        ckpt = self.latest_checkpoint()
        return json.loads((ckpt / "trainer_state.json").read_text())["step"] if ckpt else 0


def _mirror_folder(entry) -> Path | None:
    from .hub import BUNDLED_MIRROR

    if entry.weights is None:
        return None
    folder = BUNDLED_MIRROR / entry.weights.repo_id
    return folder if (folder / "model.safetensors").is_file() else None


def start_of(run: RunSpec, local: LocalState, ledger: dict) -> tuple[str, list[str], int]:
    """(how the next slice starts, the recipe arguments of that start, total steps before this local state)."""
    from .registry import get_entry

    info = local.info()
    if info is not None and local.latest_checkpoint() is not None:
        return "resume", info["argv"], info["steps_before"]
    entry = get_entry(run.entry)
    mirror = _mirror_folder(entry)
    published = ledger.get("published")
    if mirror is not None:
        restarts = sum(1 for s in ledger["slices"] if s["start"] == "warm start")
        argv = ["--init-from", str(mirror), "--lr-warmup", str(run.warmup_steps), "--seed", str(restarts + 1)]
        return "warm start", argv, published["steps"] if published else 0
    return "scratch", [], 0


def recipe_argv(run: RunSpec, spec: CampaignSpec, local: LocalState, start_args: list[str], seconds: float,
                data_dir: str | None) -> list[str]:
    argv = ["--entry", run.entry, "--output-dir", str(local.run_dir), "--resume", "latest",
            "--checkpoint-every", str(run.checkpoint_every), "--time-limit", f"{max(seconds, 0):.0f}", "--grid-n", "0",
            "--data-dir", dataset_dir(spec, data_dir), *start_args]
    for item in run.overrides:
        argv += ["--set", item]
    return argv


# ---------------------------------------------------------------------------------------------------- evaluation
def evaluate_export(folder: Path, entry, run: RunSpec, data_dir: str):
    """``zoo eval``'s quality metric on the fp16 weights that would be published (loaded back from fp16); returns
    (results, that model)."""
    import torch

    from .evaluation import EvalSettings, evaluate
    from .model import EnergyModel

    model = EnergyModel.from_pretrained(folder)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, dtype=torch.float16)
        model = EnergyModel.from_pretrained(tmp).float().eval()
    settings = EvalSettings(metrics=("quality",), num_samples=run.eval.n, seed=run.eval.seed, data_dir=data_dir)
    return evaluate(model, entry, settings, log=lambda m: print(m, flush=True)), model


def eval_command(run: RunSpec, spec: CampaignSpec) -> str:
    return (f"zoo eval {run.entry} --data-dir {spec.data_dir} --metrics quality --num-samples {run.eval.n} "
            f"--seed {run.eval.seed}")


# ---------------------------------------------------------------------------------------------------- publishing
def tracked_bytes(root: Path = REPO_ROOT) -> int:
    """Bytes of the files git tracks in the work tree (what travels to a device machine)."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise ZooError(f"cannot list the tracked files of {root} to check the size budget: {err}") from None
    return sum((root / n).stat().st_size for n in names.decode().split("\0") if n and (root / n).is_file())


def check_budget(spec: CampaignSpec, new_files: dict[Path, int], root: Path = REPO_ROOT) -> int:
    """The tracked tree after replacing/adding ``new_files`` (path -> size) must stay within the budget."""
    after = tracked_bytes(root) + sum(size - (p.stat().st_size if p.is_file() else 0) for p, size in new_files.items())
    budget = int(spec.size_budget_mib * 2**20)
    if after > budget:
        raise BudgetError(f"publishing would make the tracked tree {after / 2**20:.1f} MiB, over the campaign's size "
                          f"budget of {spec.size_budget_mib:g} MiB (what can travel to a GPU machine beside its "
                          f"data). Nothing was published; shrink the network or raise size_budget_mib in "
                          f"campaign.yaml with a reason.")
    return after


def _pin_weights(entry, sha: dict) -> None:
    """Write the new sha256 pins into the entry's YAML (``weights: null`` becomes a weights block)."""
    path = Path(entry.source)
    text = path.read_text()
    pins = f"sha256: {{config.json: {sha['config.json']}, model.safetensors: {sha['model.safetensors']}}}"
    if re.search(r"^weights: null\s*$", text, flags=re.M):
        block = (f"weights:\n  repo_id: ebm-zoo/{entry.name}          # bundled in hub_mirror/ebm-zoo/{entry.name} "
                 f"(fp16, published by the campaign)\n  revision: main\n  {pins}")
        text = re.sub(r"^weights: null[ \t]*$", block, text, count=1, flags=re.M)
    elif re.search(r"^  sha256: \{.*\}[ \t]*$", text, flags=re.M):
        text = re.sub(r"^  sha256: \{.*\}[ \t]*$", "  " + pins, text, count=1, flags=re.M)
    else:
        raise ConfigError(f"{path}: no 'weights: null' line or one-line 'sha256: {{...}}' pin to update")
    from .hub import write_atomic

    write_atomic(path, lambda p: Path(p).write_text(text))


def publish(model, entry, run: RunSpec, spec: CampaignSpec, results: dict, ledger: dict) -> Path:
    """Replace the bundled fp16 weights, their sha256 pins, their ``eval_results.json`` and the card, each file atomically;
    the size budget is checked first. The folder is built beside the mirror and swapped in whole."""
    import torch

    from .hub import bundled_folder, sha256_file

    target = bundled_folder(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=target.parent))
    staging.chmod(0o755)  # a published folder, not a private temp one
    try:
        model.save_pretrained(staging, dtype=torch.float16)
        _sampler_as_the_entry_now_reads(run, staging)
        if (target / "assets").is_dir():  # the card's images (zoo.cards) stay with the card
            shutil.copytree(target / "assets", staging / "assets")
        check_budget(spec, {target / n: (staging / n).stat().st_size for n in ("model.safetensors", "config.json")})
        sha = {n: sha256_file(staging / n) for n in ("config.json", "model.safetensors")}
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)  # the new weights folder appears whole
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _pin_weights(entry, sha)
    _record(entry, run, spec, results, model, ledger, target)
    return target


def _sampler_as_the_entry_now_reads(run: RunSpec, folder: Path) -> None:
    """The export's ``sampler_config.json`` is the entry's as the slice started; presets edited in the entry since
    (e.g. a new ``inpaint`` preset) reach the publish, a changed default does not (``zoo.cards.sampler_to_write``)."""
    from . import registry
    from .cards import sampler_to_write
    from .hub import SAMPLER_CONFIG_NAME, write_json
    from .training.args import apply_overrides

    registry._all.cache_clear()
    sampler = sampler_to_write(apply_overrides(registry.get_entry(run.entry), run.overrides).sampler_config_json(), folder)
    if sampler is not None:
        write_json(folder / SAMPLER_CONFIG_NAME, sampler)


def _record(entry, run: RunSpec, spec: CampaignSpec, results: dict, model, ledger: dict, folder: Path) -> None:
    """What follows an evaluation of the bundled weights: their ``eval_results.json``, the ledger and the card (read
    from the entry as it now is: a publish has just re-pinned it)."""
    from . import registry
    from .cards import mirror_card
    from .evaluation import write_results

    write_results(entry.name, results, eval_command(run, spec), model)
    write_ledger(entry.name, ledger)
    registry._all.cache_clear()
    (folder / "README.md").write_text(mirror_card(registry.get_entry(entry.name)))


# ---------------------------------------------------------------------------------------------------- one slice
def run_slice(run: RunSpec, spec: CampaignSpec, seconds: float, *, device: str = "cpu", data_dir: str | None = None,
              log=print) -> dict:
    """Train ``run`` for about ``seconds`` from the best state that exists, export, evaluate, publish if better."""
    from .registry import get_entry
    from .training import main as recipe_main

    entry = get_entry(run.entry)
    local = LocalState(state_root(spec) / run.name)
    ledger = read_ledger(entry.name)
    start, start_args, steps_before = start_of(run, local, ledger)
    if start != "resume":
        shutil.rmtree(local.run_dir, ignore_errors=True)
        local.folder.mkdir(parents=True, exist_ok=True)
        local.info_path.write_text(json.dumps({"argv": start_args, "steps_before": steps_before, "start": start}))
    data = dataset_dir(spec, data_dir)
    argv = recipe_argv(run, spec, local, start_args, seconds, data)
    step_from = steps_before + local.step()
    log(f"[campaign] {run.name}: {start} at step {step_from}, {seconds / 60:.1f} min on {device}")
    began, cpu_began = time.time(), time.process_time()
    if device.startswith("cuda"):
        os.environ.pop("ACCELERATE_USE_CPU", None)
    else:
        os.environ["ACCELERATE_USE_CPU"] = "1"
    export = recipe_main(entry.family, argv)
    hours = (time.time() - began) / 3600
    core_hours = (time.process_time() - cpu_began) / 3600  # the CPU time of this process, all its threads
    step_to = steps_before + local.step()
    record = {"device": device, "start": start, "steps_from": step_from, "steps_to": step_to, "hours": round(hours, 4),
              "core_hours": round(core_hours, 4),
              "command": "zoo campaign run (recipe: " + " ".join(shlex.quote(a) for a in argv) + ")"}
    return settle(run, spec, entry, export, record, data, log)


def settle(run: RunSpec, spec: CampaignSpec, entry, export: Path, record: dict, data: str, log=print) -> dict:
    """Evaluate ``export`` as every slice is evaluated, add ``record`` with its date and metric to the ledger, and
    publish the weights only if they score better than the published ones."""
    record = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"), **record}
    ledger = read_ledger(entry.name)
    results, model = evaluate_export(export, entry, run, data)
    q = results["quality"]
    fid, ceiling = q["model"]["fid"], q["real_data_ceiling"]["fid"]
    published = ledger.get("published")
    better = published is None or fid < published["fid"]
    record.update({"fid": round(fid, 4), "fid_real_data": round(ceiling, 4), "n": q["n"], "published": better})
    ledger["slices"].append(record)
    if better:
        ledger["published"] = {"steps": record["steps_to"], "fid": record["fid"],
                               "fid_real_data": record["fid_real_data"], "n": q["n"], "date": record["date"]}
        try:
            publish(model, entry, run, spec, results, ledger)
        except BudgetError:
            record["published"] = False
            ledger["published"] = published
            write_ledger(entry.name, ledger)
            raise
        log(f"[campaign] {run.name}: cFID {fid:.3g} (real data {ceiling:.3g}, n={q['n']}) at step "
            f"{record['steps_to']}: published")
    else:
        write_ledger(entry.name, ledger)
        log(f"[campaign] {run.name}: cFID {fid:.3g} at step {record['steps_to']} is not better than the published "
            f"{published['fid']:.3g}: the published weights stay")
    return record


def adopt(run: RunSpec, spec: CampaignSpec, output_dir: Path, *, command: str, hours: float, note: str = "",
          data_dir: str | None = None, log=print) -> dict:
    """A run trained by hand with the entry's recipe (``--output-dir output_dir``; e.g. a new network from scratch)
    enters the ledger as a slice: evaluated like one, recorded with its command, published only if it scores better.
    A run from random init starts a new lineage of steps (``start: scratch``); one initialised from weights continues
    the published steps. Its export must be the entry's model as the entry now reads (change the entry first)."""
    from .registry import get_entry
    from .training.args import apply_overrides

    entry = get_entry(run.entry)
    stats_path, export = Path(output_dir) / "train_stats.json", Path(output_dir) / "export"
    if not stats_path.is_file() or not (export / "config.json").is_file():
        raise ConfigError(f"{output_dir}: not a finished recipe run (no train_stats.json and export/ beside it)")
    config = json.loads((export / "config.json").read_text())
    expected = apply_overrides(entry, run.overrides).config_json()  # the model the campaign's slices train
    if config != expected:
        raise ConfigError(f"{export}: its model ({config.get('architecture')}) is not the one the campaign trains for "
                          f"{entry.name} ({expected.get('architecture')}): change the entry first")
    if not hours > 0:
        raise ConfigError(f"hours must be > 0 (the run's wall time), got {hours}")
    stats = json.loads(stats_path.read_text())
    scratch = stats["initialised from"] == "random init"
    published = read_ledger(entry.name).get("published")
    steps_from = 0 if scratch or published is None else published["steps"]
    record = {"device": "cpu", "start": "scratch" if scratch else "warm start", "steps_from": steps_from,
              "steps_to": steps_from + stats["steps"], "hours": round(hours, 4), "command": command,
              "note": "by hand" + (f": {note}" if note else "")}
    return settle(run, spec, entry, export, record, dataset_dir(spec, data_dir), log)


def rescore(run: RunSpec, spec: CampaignSpec, *, data_dir: str | None = None, log=print) -> dict:
    """After a change of the entry's default sampler: the published weights, untouched, evaluated as every slice is
    under the sampler the campaign's slices now export. The mirror's ``sampler_config.json``, ``eval_results.json``
    and card follow, the ledger's published cFID (what the next slice must beat) becomes the new one, and a
    ``rescore`` record keeps the change in the history."""
    from .hub import SAMPLER_CONFIG_NAME, bundled_folder, write_json
    from .registry import get_entry
    from .training.args import apply_overrides

    entry = get_entry(run.entry)
    ledger, folder = read_ledger(entry.name), bundled_folder(entry)
    published = ledger.get("published")
    if published is None or not (folder / "model.safetensors").is_file():
        raise ConfigError(f"{entry.name}: no published weights to rescore")
    sampler = apply_overrides(entry, run.overrides).sampler_config_json()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("config.json", "model.safetensors"):
            shutil.copy(folder / name, Path(tmp) / name)
        write_json(Path(tmp) / SAMPLER_CONFIG_NAME, sampler)
        results, model = evaluate_export(Path(tmp), entry, run, dataset_dir(spec, data_dir))
    q = results["quality"]
    record = {"date": date, "device": str(model.device), "start": "rescore", "steps_from": published["steps"],
              "steps_to": published["steps"], "hours": 0.0, "command": f"zoo campaign rescore {run.name}",
              "note": f"the published weights under the new default sampler (before: cFID {published['fid']:.4g})",
              "fid": round(q["model"]["fid"], 4), "fid_real_data": round(q["real_data_ceiling"]["fid"], 4),
              "n": q["n"], "published": True}
    ledger["slices"].append(record)
    ledger["published"] = {**published, "fid": record["fid"], "fid_real_data": record["fid_real_data"],
                           "n": q["n"], "date": date}
    write_json(folder / SAMPLER_CONFIG_NAME, sampler)
    _record(entry, run, spec, results, model, ledger, folder)
    log(f"[campaign] {run.name}: the published weights under the new sampler: cFID {published['fid']:.3g} -> "
        f"{record['fid']:.3g} (real data {record['fid_real_data']:.3g}, n={q['n']})")
    return record


def slice_order(runs: list) -> list:
    """The runs in the order they get their next slice: never trained first, then the least recently trained (the
    ledger's last slice), the campaign file's priority breaking ties; so that across sessions every run gets its turn
    even when a session has time for only some of them."""
    def last(run) -> str:
        trained = [s for s in read_ledger(run.entry)["slices"] if s["start"] != "rescore"]
        return trained[-1]["date"] if trained else ""

    return [run for _, _, run in sorted((last(r), i, r) for i, r in enumerate(runs))]


def run_campaign(spec: CampaignSpec, until_s: float, *, device: str = "cpu", only: list[str] | None = None,
                 threads: int | None = None, data_dir: str | None = None, log=print) -> list[dict]:
    """Round robin over the runs not at their target (in ``slice_order``) until the deadline; each slice ends with its
    export and evaluation ``eval_reserve_minutes`` before the deadline."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    deadline = time.time() + until_s
    runs = [r for r in spec.runs if not only or r.name in only]
    unknown = sorted(set(only or []) - {r.name for r in spec.runs})
    if unknown:
        raise ConfigError(f"--only {unknown}: not runs of the campaign ({[r.name for r in spec.runs]})")
    records, stalled = [], set()

    def time_for_a_slice() -> float:
        """Seconds of training the next slice gets, 0 if too few are left for one."""
        left = deadline - time.time() - spec.eval_reserve_minutes * 60
        if left >= (MIN_LATER_SLICE_S if records else MIN_SLICE_S):
            return left
        if records and left >= MIN_SLICE_S:
            log(f"[campaign] {left / 60:.1f} min left: too short for another slice (at least "
                f"{MIN_LATER_SLICE_S / 60:.0f} min after a command's first); stopping")
        return 0

    while True:
        pending = slice_order([r for r in runs if totals(read_ledger(r.entry))["steps"] < r.target_steps
                               and r.name not in stalled])
        if not pending:
            break
        for run in pending:
            left = time_for_a_slice()
            if not left:
                return records
            try:
                record = run_slice(run, spec, min(run.slice_minutes * 60, left), device=device, data_dir=data_dir,
                                   log=log)
            except ZooError as err:  # e.g. a diverged run: the others go on; its last good checkpoint is kept
                log(f"[campaign] {run.name}: slice failed, skipped until the next `zoo campaign run`: {err}")
                stalled.add(run.name)
                continue
            records.append(record)
            if record["steps_to"] == record["steps_from"]:  # its recipe is at max_steps: nothing more to train
                stalled.add(run.name)
    return records


# ---------------------------------------------------------------------------------------------------- status
def status_rows(spec: CampaignSpec) -> list[dict]:
    from .registry import get_entry

    rows = []
    for i, run in enumerate(spec.runs):
        ledger = read_ledger(run.entry)
        t = totals(ledger)
        local = LocalState(state_root(spec) / run.name)
        local_steps = (local.info() or {}).get("steps_before", 0) + local.step() if local.latest_checkpoint() else 0
        last = ledger["slices"][-1] if ledger["slices"] else None
        mirror = _mirror_folder(get_entry(run.entry))
        where = (f"local: {local.latest_checkpoint()}" if local.latest_checkpoint() else
                 f"mirror: {mirror}" if mirror else "none (scratch)")
        rows.append({
            "run": run.name, "entry": run.entry, "steps": max(t["steps"], local_steps), "target_steps": run.target_steps,
            "cpu_hours": round(t["cpu_hours"], 2), "gpu_hours": round(t["gpu_hours"], 2),
            "last_fid": last["fid"] if last else None, "fid_real_data": last["fid_real_data"] if last else None,
            "n": last["n"] if last else None,
            "published_fid": ledger["published"]["fid"] if ledger.get("published") else None,
            "state": where, "priority": i + 1,
        })
    return rows


def format_status(rows: list[dict], spec: CampaignSpec) -> str:
    lines = []
    below = {r["run"] for r in rows if r["steps"] < r["target_steps"]}
    pending = [run.name for run in slice_order([r for r in spec.runs if r.name in below])]
    for r in rows:
        published = (f"published {r['published_fid']:.3g}" if r["published_fid"] is not None
                     else "nothing published")
        quality = (f"last cFID {r['last_fid']:.3g} vs real data {r['fid_real_data']:.3g} (n={r['n']}), {published}"
                   if r["last_fid"] is not None else "not evaluated yet")
        lines.append(f"{r['priority']}. {r['run']} ({r['entry']}): {r['steps']:,} / {r['target_steps']:,} steps, "
                     f"{r['cpu_hours']:.2f} h on CPU + {r['gpu_hours']:.2f} h on GPU (wall time); {quality}\n"
                     f"   state: {r['state']}")
    lines.append("next: " + (" -> ".join(pending) + " (round robin)" if pending else "every run is at its target"))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- transfer
def pack_states(spec: CampaignSpec, out: Path, only: list[str] | None = None) -> list[Path]:
    """Each run's latest local checkpoint and info as one safetensors file (``<run>.state.safetensors``, the JSON in
    its metadata) plus the ledgers: what a GPU machine brings back, within the transfer limits."""
    from safetensors.torch import load_file, save_file

    from .training.state import TENSORS, TREE

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for run in spec.runs:
        if only and run.name not in only:
            continue
        local = LocalState(state_root(spec) / run.name)
        ckpt = local.latest_checkpoint()
        if ckpt is None:
            continue
        meta = {"tree": (ckpt / TREE).read_text(), "info": local.info_path.read_text(),
                "checkpoint": ckpt.name, "settings": (ckpt / "run_settings.json").read_text(),
                "trainer_state": (ckpt / "trainer_state.json").read_text(),
                "ledger": json.dumps(read_ledger(run.entry))}
        path = out / f"{run.name}.state.safetensors"
        save_file(load_file(str(ckpt / TENSORS)), str(path), metadata=meta)
        files.append(path)
    check_transfer(files)
    return files


def check_transfer(files: list[Path]) -> None:
    too_big = [f"{p.name} ({p.stat().st_size / 2**20:.1f} MiB)" for p in files if p.stat().st_size > TRANSFER_MAX_BYTES]
    if len(files) > TRANSFER_MAX_FILES or too_big:
        raise ZooError(f"the transfer holds {len(files)} files (at most {TRANSFER_MAX_FILES}) and files over "
                       f"{TRANSFER_MAX_BYTES >> 20} MiB: {too_big or 'none'}; pack fewer runs (--only)")


def pack_data(spec: CampaignSpec, out: Path, data_dir: str | None = None, only: list[str] | None = None) -> list[Path]:
    """The runs' datasets as the zoo's decoded-array cache (``$ZOO_DATA_CACHE`` layout: compressed uint8 npz, read
    without ``datasets`` and without unpickling) copied into ``out``: the compact form in which data travels to a GPU
    machine (MNIST's train + test: about 12 MB, against 19 MB of parquet)."""
    from .data import _cache_file, cache_root, load_tensor
    from .registry import get_entry

    files = []
    for run in spec.runs:
        if only and run.name not in only:
            continue
        entry = get_entry(run.entry)
        for split in ("train", "test"):
            load_tensor(entry, split, dataset_dir(spec, data_dir), labels=True)
            source = _cache_file(entry.data, split, entry.model.input_shape[0])
            target = out / source.relative_to(cache_root())
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            files.append(target)
    return files


def unpack_states(spec: CampaignSpec, folder: Path) -> list[str]:
    """The inverse of ``pack_states`` on the machine that continues: each run's checkpoint into its state folder
    (unless the local one is further along) and its ledger into the repository."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from .training.state import TENSORS, TREE

    names = []
    for run in spec.runs:
        path = folder / f"{run.name}.state.safetensors"
        if not path.is_file():
            continue
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        step = json.loads(meta["trainer_state"])["step"]
        local = LocalState(state_root(spec) / run.name)
        if local.latest_checkpoint() is not None and local.step() >= step and local.info() == json.loads(meta["info"]):
            continue
        shutil.rmtree(local.run_dir, ignore_errors=True)
        ckpt = local.run_dir / "checkpoints" / meta["checkpoint"]
        ckpt.mkdir(parents=True)
        save_file(tensors, str(ckpt / TENSORS))
        (ckpt / TREE).write_text(meta["tree"])
        (ckpt / "run_settings.json").write_text(meta["settings"])
        (ckpt / "trainer_state.json").write_text(meta["trainer_state"])
        local.info_path.write_text(meta["info"])
        incoming = json.loads(meta["ledger"])
        ledger = read_ledger(run.entry)
        known = {json.dumps(s, sort_keys=True) for s in ledger["slices"]}
        ledger["slices"] += [s for s in incoming["slices"] if json.dumps(s, sort_keys=True) not in known]
        write_ledger(run.entry, ledger)
        names.append(run.name)
    return names
