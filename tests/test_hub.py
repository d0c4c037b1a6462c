import json
from pathlib import Path

import pytest
import torch

import zoo
from conftest import tiny_model
from zoo.hub import sha256_file


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = tiny_model().eval()
    folder = model.save_pretrained(tmp_path / "tiny")
    return model, folder


def publish(hub, repo_id: str, folder: Path):
    hub.repos[repo_id] = {p.name: p.read_bytes() for p in folder.iterdir()}


def test_save_load_is_bit_exact(saved):
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors", "sampler_config.json"]
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in folder.iterdir())  # readable by others (not 0600)
    loaded = zoo.EnergyModel.from_pretrained(folder)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(model.energy(x), loaded.energy(x))
    assert json.loads((folder / "config.json").read_text()) == loaded.config


def test_save_pretrained_leaves_no_temp_files(saved):
    _, folder = saved
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_load_is_strict_about_missing_keys(saved):
    from safetensors.torch import load_file, save_file

    _, folder = saved
    state = load_file(str(folder / "model.safetensors"))
    state.pop("head.lq.bias")
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(zoo.WeightsIntegrityError, match=r"missing \['head.lq.bias'\]"):
        zoo.EnergyModel.from_pretrained(folder)


def test_corrupted_safetensors_file_gives_clear_error(saved):
    _, folder = saved
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(zoo.WeightsIntegrityError, match="not a readable safetensors"):
        zoo.EnergyModel.from_pretrained(folder)


def test_hub_download_round_trip_via_loopback_server(hub, saved):
    model, folder = saved
    publish(hub, "ebm-zoo/tiny-roundtrip", folder)
    pins = {"model.safetensors": sha256_file(folder / "model.safetensors")}
    loaded = zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-roundtrip", revision="main", sha256=pins)
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(model.energy(x), loaded.energy(x))
    assert any(r.startswith("GET /ebm-zoo/tiny-roundtrip/resolve/main/model.safetensors") for r in hub.requests)
    assert loaded.card.startswith("---")


def test_wrong_sha256_raises_and_purges_cache(hub, saved):
    _, folder = saved
    publish(hub, "ebm-zoo/tiny-badsha", folder)
    with pytest.raises(zoo.WeightsIntegrityError, match="sha256 mismatch") as err:
        zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-badsha", sha256={"model.safetensors": "0" * 64})
    assert "removed from the cache" in str(err.value)
    from huggingface_hub import constants

    cached = Path(constants.HF_HUB_CACHE) / "models--ebm-zoo--tiny-badsha"
    weights = [p for p in cached.rglob("*") if p.is_file() and p.stat().st_size == (folder / "model.safetensors").stat().st_size]
    assert weights == []


def test_truncated_download_raises_and_leaves_no_file(hub, saved):
    _, folder = saved
    publish(hub, "ebm-zoo/tiny-truncated", folder)
    hub.truncate.add("model.safetensors")
    try:
        with pytest.raises(zoo.WeightsNotFoundError, match="Hub download failed"):
            zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-truncated")
    finally:
        hub.truncate.discard("model.safetensors")
    from huggingface_hub import constants

    blobs = Path(constants.HF_HUB_CACHE) / "models--ebm-zoo--tiny-truncated" / "blobs"
    sizes = [p.stat().st_size for p in blobs.iterdir()] if blobs.exists() else []
    assert (folder / "model.safetensors").stat().st_size // 2 not in sizes
    assert not list(blobs.glob("*.incomplete")) if blobs.exists() else True


def test_missing_repo_says_where_it_looked(hub):
    with pytest.raises(zoo.WeightsNotFoundError, match="ZOO_HUB_MIRROR"):
        zoo.EnergyModel.from_pretrained("ebm-zoo/does-not-exist")


def test_push_to_hub_then_load(hub, saved):
    model, _ = saved
    url = model.push_to_hub("me/tiny-pushed", commit_message="test push")
    assert "me/tiny-pushed" in url
    assert sorted(hub.repos["me/tiny-pushed"]) == ["README.md", "config.json", "model.safetensors", "sampler_config.json"]
    loaded = zoo.EnergyModel.from_pretrained("me/tiny-pushed")
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(model.energy(x), loaded.energy(x))


def test_mirror_env_and_sha_check(tmp_path, saved, monkeypatch):
    model, folder = saved
    repo = tmp_path / "mirror" / "me" / "tiny"
    repo.mkdir(parents=True)
    for p in folder.iterdir():
        (repo / p.name).write_bytes(p.read_bytes())
    monkeypatch.setenv("ZOO_HUB_MIRROR", str(tmp_path / "mirror"))
    good = {"model.safetensors": sha256_file(folder / "model.safetensors")}
    assert torch.equal(zoo.EnergyModel.from_pretrained("me/tiny", sha256=good).energy(torch.ones(1, 1, 8, 8)),
                       model.energy(torch.ones(1, 1, 8, 8)))
    with pytest.raises(zoo.WeightsIntegrityError, match="not the pinned version"):
        zoo.EnergyModel.from_pretrained("me/tiny", sha256={"model.safetensors": "f" * 64})
    assert (repo / "model.safetensors").exists()  # a user's mirror is never deleted


def test_revision_is_honoured_when_the_mirror_holds_the_repo(hub):
    """A mirror holds the pinned revision only: another revision goes to the Hub (here: not there -> clear error)."""
    with pytest.raises(zoo.WeightsNotFoundError, match="mirrors hold only revision main: skipped"):
        zoo.load("mdsm-mnist-small", revision="v0-does-not-exist")
    assert any("/ebm-zoo/mdsm-mnist-small/resolve/v0-does-not-exist/" in r for r in hub.requests)


def test_hf_hub_prefix_and_local_folder_load_in_one_line(hub, saved):
    model, folder = saved
    publish(hub, "me/tiny-prefixed", folder)
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(zoo.load("hf-hub:me/tiny-prefixed@main").energy(x), model.energy(x))
    assert torch.equal(zoo.load(str(folder)).energy(x), model.energy(x))


@pytest.mark.parametrize("bad", ["../../x", "a/../b", "hf-hub:../../etc"])
def test_repo_ids_that_walk_out_of_the_mirror_are_refused(bad, tmp_path, monkeypatch):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text("{}")  # a target outside the mirror that must not be reached
    monkeypatch.setenv("ZOO_HUB_MIRROR", str(tmp_path / "m" / "n"))
    with pytest.raises(zoo.ConfigError, match="valid Hub repo id"):
        zoo.load(bad) if bad.startswith("hf-hub:") else zoo.EnergyModel.from_pretrained(bad)


def test_a_failed_load_leaves_other_downloads_alone(hub, saved):
    from huggingface_hub import constants

    _, folder = saved
    publish(hub, "ebm-zoo/tiny-other", folder)
    blobs = Path(constants.HF_HUB_CACHE) / "models--ebm-zoo--tiny-other" / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    healthy = blobs / "0123abcd.5678.incomplete"  # another process's transfer in flight
    healthy.write_bytes(b"partial")
    hub.truncate.add("model.safetensors")
    try:
        with pytest.raises(zoo.WeightsNotFoundError):
            zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-other")
    finally:
        hub.truncate.discard("model.safetensors")
    assert healthy.read_bytes() == b"partial"


def test_a_server_that_stops_answering_gives_a_bounded_clear_error(hub, saved, monkeypatch):
    import time

    model, folder = saved
    publish(hub, "ebm-zoo/tiny-stall", folder)
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "1")
    hub.stall = 4.0
    try:
        for call in (lambda: zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-stall"),
                     lambda: model.push_to_hub("me/tiny-stall-push")):
            start = time.time()
            with pytest.raises((zoo.WeightsNotFoundError, zoo.HubError), match="did not finish within"):
                call()
            assert time.time() - start < 2.5  # the whole call, not one socket read
    finally:
        hub.stall = 0.0


def test_a_corrupt_unpinned_download_is_removed_from_the_cache(hub, saved):
    _, folder = saved
    publish(hub, "ebm-zoo/tiny-corrupt", folder)
    hub.repos["ebm-zoo/tiny-corrupt"]["model.safetensors"] = b"garbage that is not safetensors"
    with pytest.raises(zoo.WeightsIntegrityError, match="removed from the cache"):
        zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-corrupt")
    from huggingface_hub import constants

    blobs = Path(constants.HF_HUB_CACHE) / "models--ebm-zoo--tiny-corrupt" / "blobs"
    assert not [p for p in blobs.iterdir() if p.read_bytes() == b"garbage that is not safetensors"]


def test_malformed_config_json_is_one_clear_error(saved):
    _, folder = saved
    good = (folder / "sampler_config.json").read_text()
    (folder / "sampler_config.json").write_text('{"presets": {}}')
    with pytest.raises(zoo.ConfigError, match=r"sampler_config.json.default is missing"):
        zoo.EnergyModel.from_pretrained(folder)
    (folder / "sampler_config.json").write_text(good)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(zoo.ConfigError, match="config.json is not a readable JSON"):
        zoo.EnergyModel.from_pretrained(folder)
    (folder / "config.json").write_text('{"input_shape": [1, 8, 8], "data_range": [0, 1], "sigma0": 0.1}')
    with pytest.raises(zoo.ConfigError, match="architecture is missing"):
        zoo.EnergyModel.from_pretrained(folder)


def test_a_malformed_config_download_heals_on_retry(hub, saved, monkeypatch):
    """The repaired server keeps the same commit: without the purge, huggingface_hub would serve the cached snapshot
    entry of that commit forever."""
    model, folder = saved
    publish(hub, "ebm-zoo/tiny-badjson", folder)
    good = hub.repos["ebm-zoo/tiny-badjson"]["config.json"]
    hub.repos["ebm-zoo/tiny-badjson"]["config.json"] = b"{not json"
    monkeypatch.setattr(hub, "commit", lambda repo_id: "c" * 40)
    with pytest.raises(zoo.ConfigError, match="not a readable JSON.*removed from the cache"):
        zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-badjson")
    hub.repos["ebm-zoo/tiny-badjson"]["config.json"] = good
    loaded = zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-badjson")
    assert torch.equal(loaded.energy(torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))),
                       model.energy(torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))))


def test_a_failed_optional_file_is_a_failure_and_a_missing_one_is_not(hub, saved):
    _, folder = saved
    publish(hub, "ebm-zoo/tiny-500", folder)
    hub.fail["sampler_config.json"] = 403  # a refused request (a 5xx is the same, after 23 s of retries)
    try:
        with pytest.raises(zoo.WeightsNotFoundError, match="sampler_config.json|403"):
            zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-500")
    finally:
        hub.fail.clear()
    assert zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-500").sampler_config["presets"]  # served again: loads whole
    publish(hub, "ebm-zoo/tiny-nosampler", folder)
    del hub.repos["ebm-zoo/tiny-nosampler"]["sampler_config.json"]  # truly absent (404): an older repo still loads
    assert zoo.EnergyModel.from_pretrained("ebm-zoo/tiny-nosampler") is not None


@pytest.mark.parametrize("trouble", ["trickle", "retries"])
def test_the_timeout_bounds_the_whole_call(hub, saved, monkeypatch, trouble):
    """A transfer that stays alive (a byte every 0.2 s: no socket read ever times out) or a server answering 500
    (huggingface_hub retries five times, 23 s) still ends at $ZOO_HUB_TIMEOUT."""
    import time

    _, folder = saved
    publish(hub, f"ebm-zoo/tiny-{trouble}", folder)
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "2")
    if trouble == "trickle":
        hub.trickle.add("model.safetensors")
    else:
        hub.fail["model.safetensors"] = 500
    try:
        start = time.time()
        with pytest.raises(zoo.WeightsNotFoundError, match=r"did not finish within \$ZOO_HUB_TIMEOUT=2 s"):
            zoo.EnergyModel.from_pretrained(f"ebm-zoo/tiny-{trouble}")
        assert time.time() - start < 3.5
    finally:
        hub.trickle.clear()
        hub.fail.clear()


def test_measured_numbers_and_card_images_travel_with_the_weights_through_the_hub(hub, tmp_path, monkeypatch):
    """A bundled weights folder pushed to the Hub carries its eval_results.json and the card's assets/; loaded on a
    machine without the mirror, `zoo list` shows the same headline number, read from the HF cache."""
    from zoo import hub as zhub
    from zoo.listing import list_models

    def measured(name):
        return {row["name"]: row["measured"] for row in list_models()}[name]

    name = "ebm-2d-gmm-ml"
    expected = measured(name)
    assert expected.startswith("cFID")
    zhub.push_folder_to_hub(zhub.BUNDLED_MIRROR / "ebm-zoo" / name, f"ebm-zoo/{name}")
    assert {"eval_results.json", "assets/ebm-2d-gmm_energies.png"} <= set(hub.repos[f"ebm-zoo/{name}"])
    monkeypatch.setattr(zhub, "BUNDLED_MIRROR", tmp_path / "no-mirror")  # a machine with the package only
    monkeypatch.delenv("ZOO_HUB_MIRROR", raising=False)
    assert measured(name) == "-"  # not fetched yet
    zoo.load(name)
    assert measured(name) == expected
