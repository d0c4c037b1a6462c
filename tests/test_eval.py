"""zoo eval: AIS / reverse AIS on energies with known log Z, FID/KID/IS, restoration metrics, OOD, energy ranking,
the classifier recipe, and the results JSON -> card (model-index) round trip."""
import json
import math

import pytest
import torch
from huggingface_hub import ModelCard

import zoo
from zoo.evaluation import AISSettings, GaussianReference, ais_log_z, bits_per_dim, reverse_ais_log_z
from zoo.evaluation.quality import ClassifierFeatures, sample_quality
from zoo.evaluation.ranking import energy_ranking
from zoo.evaluation.restoration import denoising, masked_psnr
from zoo.masks import make_mask
from conftest import tiny_config, tiny_model
from zoo.training import main

D = 8
SETTINGS = AISSettings(n_distributions=1000, hmc_steps=1, n_leapfrog=5, step_size=0.1)


def _bracket(energy, true_log_z, start, reference, tol):
    g = torch.Generator().manual_seed(0)
    forward = ais_log_z(energy, reference, (D,), 128, SETTINGS, g)
    reverse = reverse_ais_log_z(energy, reference, start, SETTINGS, g)
    assert forward.log_z <= true_log_z + tol and reverse.log_z >= true_log_z - tol
    assert abs(forward.log_z - true_log_z) < tol and abs(reverse.log_z - true_log_z) < tol
    return forward, reverse


def test_ais_and_reverse_ais_bracket_the_log_z_of_a_gaussian():
    mean, var = torch.linspace(-1, 1, D, dtype=torch.float64), 0.3**2
    true = 0.5 * D * math.log(2 * math.pi * var)
    exact = mean + math.sqrt(var) * torch.randn(128, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = GaussianReference(torch.zeros(D, dtype=torch.float64), 1.0)
    _bracket(lambda x: (x - mean).pow(2).sum(1) / (2 * var), true, exact, ref, tol=0.15)
    # a wrong scale (E/2: log Z larger by D/2 log 2) is detected
    forward = ais_log_z(lambda x: (x - mean).pow(2).sum(1) / (4 * var), ref, (D,), 128, SETTINGS,
                        torch.Generator().manual_seed(0))
    assert abs(forward.log_z - true) > 1.0


def test_ais_and_reverse_ais_bracket_the_log_z_of_a_gaussian_mixture():
    mus = torch.stack([torch.full((D,), -1.5), torch.full((D,), 1.5)]).double()
    w, var = torch.tensor([0.3, 0.7], dtype=torch.float64), 0.5**2

    def energy(x):  # unnormalised: Z = (2 pi var)^(D/2) since the weights sum to 1
        return -torch.logsumexp(torch.log(w) - (x[:, None] - mus).pow(2).sum(2) / (2 * var), 1)

    g = torch.Generator().manual_seed(2)
    k = torch.multinomial(w, 128, replacement=True, generator=g)
    exact = mus[k] + math.sqrt(var) * torch.randn(128, D, generator=g, dtype=torch.float64)
    _bracket(energy, 0.5 * D * math.log(2 * math.pi * var), exact,
             GaussianReference(torch.zeros(D, dtype=torch.float64), 2.0), tol=0.3)


def test_bits_per_dim_rescales_the_density_to_pixel_values_in_0_255():
    # a uniform density on [0, 1]^D (E = 0, log Z = 0) is uniform on [0, 255]^D: log2(255) bits per dimension
    assert bits_per_dim(torch.zeros(5), 0.0, 10, (0.0, 1.0)) == pytest.approx(math.log2(255))
    assert bits_per_dim(torch.zeros(5), 0.0, 10, (-1.0, 1.0)) == pytest.approx(math.log2(255 / 2))


def test_ais_settings_reject_bad_values():
    with pytest.raises(zoo.ConfigError, match="n_distributions"):
        AISSettings(n_distributions=0)


def _random_classifier():
    torch.manual_seed(0)
    net = zoo.EnergyModel({"entry": "c", "family": "classifier", "input_shape": [1, 16, 16], "data_range": [0.0, 1.0],
                           "sigma0": 1.0, "architecture": {"class": "SmallCNNClassifier", "width": 4, "features": 16}})
    return net.eval()


def test_fid_kid_of_a_set_against_itself_is_zero_and_against_noise_large():
    clf = _random_classifier()
    feats, logits = ClassifierFeatures(clf, (0.0, 1.0)), ClassifierFeatures(clf, (0.0, 1.0), "logits")
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 14, 14)  # smaller images are padded to the classifier's 16x16
    for i in range(64):
        x[i, 0, i % 7: i % 7 + 6, 3:11] = 1.0
    same = sample_quality(x, x, feats, logits)
    noise = sample_quality(torch.rand(64, 1, 14, 14, generator=g), x, feats, logits)
    # an untrained network has a small feature scale: compare the two relative to each other
    assert abs(same["fid"]) < 1e-6 * noise["fid"] and abs(same["kid"]) < 1e-2 * noise["kid"]


def test_inception_score_counts_confidently_told_apart_classes():
    """IS = exp(E_x KL(p(y|x) || p(y))): 1 for one image repeated, about k for k classes told apart with confidence."""

    class RowClassifier(torch.nn.Module):  # class k = the image whose bar starts at row k (7 classes), confidently
        num_features = 7

        def forward(self, x):
            return 50.0 * x[:, 0, :7, :].sum(2).double()

    x = torch.zeros(70, 1, 14, 14)
    for i in range(70):
        x[i, 0, i % 7, 3:11] = 1.0
    varied = sample_quality(x, x, RowClassifier(), RowClassifier())
    one = sample_quality(x[:1].expand(70, -1, -1, -1).contiguous(), x, RowClassifier(), RowClassifier())
    assert one["is"] == pytest.approx(1.0, abs=1e-6) and varied["is"] == pytest.approx(7.0, rel=1e-3)


def test_identity_denoising_psnr_equals_the_noisy_psnr_and_masked_psnr_sees_only_the_hole():
    class Flat(torch.nn.Module):  # E = 0: the jump x - sigma^2 grad E is the identity
        def forward(self, x):
            return 0.0 * x.flatten(1).sum(1)

    model = zoo.EnergyModel({"entry": "flat", "family": "ebm", "input_shape": [1, 8, 8], "data_range": [0.0, 1.0],
                             "sigma0": 0.1, "architecture": {"class": "Flat"}}, Flat())
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    res = denoising(model, x, [0.05, 0.2], torch.Generator().manual_seed(1))
    for v in res.values():
        assert v["psnr"] == pytest.approx(v["psnr_noisy"], abs=0.05)  # equal up to the clamp to [0, 1]
    mask = make_mask("left", x.shape)
    assert mask[..., :4].eq(0).all() and mask[..., 4:].eq(1).all()
    wrong_outside = torch.where(mask.bool(), 1 - x, x)  # perfect in the hole, wrong where known
    assert masked_psnr(wrong_outside, x, mask, (0.0, 1.0)) > 100
    assert make_mask("random50", (4, 3, 8, 8), torch.Generator().manual_seed(0)).mean().item() == pytest.approx(0.5, abs=0.1)
    with pytest.raises(zoo.InputError, match="unknown mask"):
        make_mask("diagonal", x.shape)


def test_energy_ranking_flags_a_model_that_prefers_blank_images():
    real = torch.zeros(8, 1, 8, 8)
    real[:, :, 2:6, 2:6] = 1.0
    good = energy_ranking(lambda x: (x - real[:1]).pow(2).flatten(1).sum(1), real, (0.0, 1.0))
    bad = energy_ranking(lambda x: x.flatten(1).sum(1), real, (0.0, 1.0))  # less ink = lower energy
    assert good["real_minus_blank"] < 0 and good["real_minus_half_ink"] < 0 and good["real_minus_noise"] < 0
    assert bad["real_minus_blank"] > 0 and bad["real_minus_half_ink"] > 0


def test_classifier_recipe_trains_on_labels_and_exports(tmp_path, synthetic_mnist):
    export = main("classifier", ["--entry", "classifier-mnist", "--data-dir", str(synthetic_mnist), "--output-dir",
                                 str(tmp_path / "c"), "--max-steps", "30", "--batch-size", "16",
                                 "--set", "model.architecture.width=4", "--set", "model.architecture.features=8",
                                 "--set", "recipe.optimizer.lr=0.01", "--log-every", "10"])
    logs = [json.loads(line) for line in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()]
    assert logs[-1]["accuracy"] > logs[0]["accuracy"] or logs[-1]["accuracy"] == 1.0
    assert logs[-1]["loss"] < logs[0]["loss"]
    assert not (tmp_path / "c" / "samples").exists()  # classifiers write no sample grids
    clf = zoo.load(str(export))
    assert clf.net(torch.rand(2, 1, 32, 32), output="logits").shape == (2, 10)


def test_zoo_eval_writes_the_json_and_a_card_whose_model_index_parses(tmp_path, synthetic_mnist, capsys):
    from zoo.cards import build_card
    from zoo.cli import main as cli

    folder = synthetic_mnist / "ylecun" / "mnist" / "mnist"
    (folder / "test-00000-of-00001.parquet").write_bytes((folder / "train-00000-of-00001.parquet").read_bytes())
    out = tmp_path / "deen.json"
    assert cli(["eval", "deen-mnist", "--data-dir", str(synthetic_mnist), "--metrics", "likelihood", "denoising",
                "ranking", "--num-samples", "4", "--n-test", "16", "--ais-distributions", "5", "--ais-chains", "4",
                "--ais-leapfrog", "2", "--output-json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["command"].startswith("zoo eval deen-mnist") and payload["entry"] == "deen-mnist"
    res = payload["results"]
    assert set(res) == {"likelihood", "denoising", "ranking", "sampling"}
    assert math.isfinite(res["likelihood"]["bits_per_dim"]["ais"]) and "0.14" in res["denoising"]["results"]
    card = ModelCard(str(build_card(zoo.get_entry("deen-mnist").config_json(), None, zoo.get_entry("deen-mnist"),
                                    measured=payload)))
    metrics = {r.metric_type for r in card.data.eval_results}
    assert {"bits-per-dim", "psnr"} <= metrics
    assert "## Measured by `zoo eval`" in card.text and payload["command"] in card.text


def test_card_presets_section_places_each_preset_on_the_measured_front():
    from zoo.cards import front_section

    point = dict(schedule="exp", t_max=30.0, step_size=0.05, n_hold=9, n_anneal=37, n_final=4)
    front = {"entry": "m", "n": 64, "machine": "CPU, 2 threads", "seconds_per_step": 0.5,
             "real_data_ceiling": {"fid": 3.0, "is": 9.0},
             "points": [{"steps": 50, **point, "seconds": 25.0, "fid": 40.0, "kid": 8.0, "is": 3.5, "confident_share": 0.4},
                        {"steps": 50, **point, "t_max": 100.0, "seconds": 25.0, "fid": 600.0, "kid": 90.0, "is": 1.0,
                         "confident_share": 1.0}]}
    presets = {"fast": point, "paper": dict(point, t_max=100.0, n_hold=500, n_anneal=2000, n_final=200)}
    text = front_section(front, {"presets": presets})
    rows = [r for r in text.splitlines() if r.startswith("| 50 |")]
    assert rows[0].endswith("| `fast` |") and rows[1].endswith("|  |")  # sorted by cFID at equal cost; only fast matches
    assert "cFID 3, cIS 9" in text and "m_front.png" in text
    assert "(2700 steps) would take about 22 minutes" in text  # 2700 steps x 0.5 s = 22.5 min


def test_mdsm_is_measured_by_its_own_rules_sigma0_jump_and_sigma0_noised_ood(synthetic_mnist):
    """MDSM models the sigma0-smoothed density only: zoo eval's denoising uses the sigma0 jump at every noise level
    (equal to denoise() with its default sigma0), and OOD scores x + sigma0 n; other families keep the true sigma and
    clean images."""
    from zoo.evaluation import EvalSettings, evaluate
    from zoo.evaluation.ood import ood_table

    folder = synthetic_mnist / "ylecun" / "mnist" / "mnist"
    (folder / "test-00000-of-00001.parquet").write_bytes((folder / "train-00000-of-00001.parquet").read_bytes())
    entry = zoo.get_entry("mdsm-mnist")
    model = zoo.load("mdsm-mnist", pretrained=False)
    model.net = zoo.EnergyModel(tiny_config(width=4, shape=(1, 32, 32)), sampler_config=None).net
    res = evaluate(model, entry, EvalSettings(metrics=("denoising",), n_test=8, data_dir=str(synthetic_mnist)))
    assert res["denoising"]["jump_sigma"] == 0.1
    x = zoo.data.load_tensor(entry, "test", str(synthetic_mnist), limit=8)
    g = torch.Generator().manual_seed(0)
    expected = denoising(model, x, [0.3], g, jump_sigma=0.1)["0.3"]
    noisy = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    from zoo.metrics import psnr

    assert expected["psnr"] == pytest.approx(psnr(model.denoise(noisy), x, (0.0, 1.0)), abs=1e-4)
    assert res["denoising"]["results"]["0.3"]["psnr"] != denoising(model, x, [0.3], torch.Generator().manual_seed(0))[
        "0.3"]["psnr"]  # the true-sigma jump gives another number

    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return x.flatten(1).sum(1)

    spy = zoo.EnergyModel(entry.config_json(), Spy())
    table = ood_table(spy, entry, ["noise:uniform"], n=8, data_dir=str(synthetic_mnist))
    assert table["scoring_sigma"] == 0.1
    residual = seen[0] - x
    assert 0.07 < residual.std().item() < 0.13  # the in-distribution images were scored with sigma0 noise added
    seen.clear()
    deen = zoo.get_entry("deen-mnist")
    assert ood_table(zoo.EnergyModel(deen.config_json(), Spy()), deen, ["noise:uniform"], n=8,
                     data_dir=str(synthetic_mnist))["scoring_sigma"] == 0.0
    assert torch.equal(seen[0], zoo.data.load_tensor(deen, "test", str(synthetic_mnist), limit=8))


def test_ood_partners_are_the_other_dataset_at_the_same_shape_cifar10_against_celeba_as_table_4():
    from zoo.evaluation.ood import OOD, partner_entry

    for name, partner_data in [("denoising-ebm-cifar10", "nielsr/CelebA-faces"), ("ncebm-celeba", "uoft-cs/cifar10"),
                               ("denoising-ebm-mnist", "zalando-datasets/fashion_mnist"),
                               ("mdsm-fashion-mnist", "ylecun/mnist")]:
        entry = zoo.get_entry(name)
        partner = zoo.get_entry(partner_entry(entry))
        assert partner.data.hub_id == partner_data and partner.model.input_shape == entry.model.input_shape
        assert partner.family == entry.family or name == "denoising-ebm-cifar10"  # no Denoising-EBM on CelebA at 32x32
        assert OOD().applies(entry)
    assert partner_entry(zoo.get_entry("mdsm-celeba-resnet18")) is None  # no 64x64 CIFAR-10 entry: noise and interp
    assert not OOD().applies(zoo.get_entry("ebm-2d-gmm-ml")) and not OOD().applies(zoo.get_entry("classifier-mnist"))


def test_a_partial_or_foreign_evaluation_never_overwrites_published_results(tmp_path, monkeypatch, capsys):
    from zoo import hub
    from zoo.cards import measured_section
    from zoo.cli import main as cli
    from zoo.evaluation import write_results

    monkeypatch.setattr(hub, "BUNDLED_MIRROR", tmp_path)  # the published results live with the bundled weights
    with pytest.raises(zoo.InputError, match="no bundled weights folder"):
        write_results("mdsm-mnist-small", {"quality": {"a": 1}}, "zoo eval mdsm-mnist-small", tiny_model())
    (tmp_path / "ebm-zoo" / "mdsm-mnist-small").mkdir(parents=True)
    model = tiny_model()
    write_results("mdsm-mnist-small", {"quality": {"a": 1}, "denoising": {"b": 2}}, "zoo eval x", model)
    write_results("mdsm-mnist-small", {"denoising": {"b": 3}}, "zoo eval x --metrics denoising", model)
    payload = json.loads((tmp_path / "ebm-zoo" / "mdsm-mnist-small" / "eval_results.json").read_text())
    assert payload["results"] == {"quality": {"a": 1}, "denoising": {"b": 3}}
    assert payload["provenance"]["quality"]["command"] == "zoo eval x"
    assert payload["provenance"]["denoising"]["command"] == "zoo eval x --metrics denoising"
    text = measured_section({**payload, "results": {}})
    assert "zoo eval x\n" in text and "zoo eval x --metrics denoising" in text
    # a folder naming a bundled entry needs --output-json; a missing output folder fails before any work
    folder = tmp_path / "copy"
    tiny_model().save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "entry": "mdsm-mnist"}))
    assert cli(["eval", str(folder), "--metrics", "ranking"]) == 2
    assert "must not replace the published results of mdsm-mnist" in capsys.readouterr().err
    assert cli(["eval", "mdsm-mnist", "--output-json", str(tmp_path / "missing" / "x.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
