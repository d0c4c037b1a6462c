"""The bundled weights (hub_mirror/): sha256-verified loading and real-data quality checks."""
import pytest
import torch

import zoo
from zoo.data import load_tensor

TRAINED = ["mdsm-mnist-small", "mdsm-mnist", "mdsm-fashion-mnist", "ebm-mnist-ml", "ncebm-mnist"]


@pytest.mark.parametrize("name", TRAINED)
def test_bundled_weights_load_verified(name):
    model = zoo.load(name)
    entry = zoo.get_entry(name)
    assert model.config == entry.config_json()
    assert model.sampler_config == entry.sampler_config_json()
    assert model.dtype == torch.float32 and not any(p.requires_grad for p in model.parameters())


def test_tampered_bundled_weights_are_refused(tmp_path):
    import shutil

    from zoo.hub import BUNDLED_MIRROR

    mirror = tmp_path / "mirror" / "ebm-zoo" / "mdsm-mnist-small"
    shutil.copytree(BUNDLED_MIRROR / "ebm-zoo" / "mdsm-mnist-small", mirror)
    data = bytearray((mirror / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (mirror / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(zoo.WeightsIntegrityError, match="sha256 mismatch"):
        zoo.load("mdsm-mnist-small", mirror=tmp_path / "mirror")


@pytest.mark.parametrize("name, split_entry", [("mdsm-mnist-small", "mdsm-mnist"), ("mdsm-mnist", "mdsm-mnist"),
                                               ("mdsm-fashion-mnist", "mdsm-fashion-mnist")])
def test_denoising_improves_psnr_on_test_images(shared_data, name, split_entry):
    model = zoo.load(name)
    clean = load_tensor(zoo.get_entry(split_entry), "test", shared_data)[:32]
    g = torch.Generator().manual_seed(0)
    psnr = lambda y: (10 * torch.log10(1 / ((y.clamp(0, 1) - clean) ** 2).flatten(1).mean(1))).mean().item()  # noqa: E731
    for noise in (0.1, 0.3):
        noisy = clean + noise * torch.randn(clean.shape, generator=g)
        assert psnr(model.denoise(noisy)) > psnr(noisy) + 3.0, (name, noise)


def test_test_digits_have_lower_energy_than_noise_and_other_data(shared_data):
    model = zoo.load("mdsm-mnist-small")
    digits = load_tensor(zoo.get_entry("mdsm-mnist"), "test", shared_data)[:64]
    noise = 0.5 + torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert (model.energy(digits) < model.energy(noise)).all()


def test_maximum_likelihood_mnist_weights_rank_digits_below_noise_and_sample_sparse_ink(shared_data):
    model = zoo.load("ebm-mnist-ml")
    digits = load_tensor(zoo.get_entry("ebm-mnist-ml"), "test", shared_data)[:64]
    noise = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert (model.energy(digits) < model.energy(noise)).all()
    x = model.sample(16, n_steps=30, seed=0, progress=False)  # the training chains' length
    ink = x.flatten(1).mean(1)  # MNIST: ~0.13 of the pixels' mass; the collapsed later checkpoints gave ~0.5
    assert x.shape == (16, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    assert (ink > 0.01).all() and (ink < 0.3).all(), ink


def test_bundled_noise_conditional_mnist_samples_digits_of_many_classes_and_ranks_digits_first(shared_data):
    """The zoo's first picture: the default sampler's digits are recognised by the evaluation classifier, across
    classes; real digits get lower energy than noise at the default sigma."""
    from zoo.evaluation.quality import ClassifierFeatures, classifier_for

    model = zoo.load("ncebm-mnist")
    entry = zoo.get_entry("ncebm-mnist")
    x = model.sample(64, seed=0, progress=False)
    assert x.shape == (64, 1, 32, 32) and x.min() >= 0 and x.max() <= 1
    probs = ClassifierFeatures(classifier_for(entry, zoo.EnergyModel), model.data_range, "logits")(x).softmax(1)
    confident = probs.max(1).values >= 0.9
    assert confident.float().mean() >= 0.3  # the published weights: 0.44 at n = 500 (random weights: 0)
    assert len(set(probs.argmax(1)[confident].tolist())) >= 7  # not one class
    digits = load_tensor(entry, "test", shared_data)[:64]
    noise = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert (model.energy(digits) < model.energy(noise)).all()


@pytest.mark.parametrize("name", [r["name"] for r in zoo.list() if r["weights"] == "mirror"])
def test_pinned_config_equals_the_mirror_file_and_the_card_is_generated(name):
    import json

    from zoo.cards import mirror_card
    from zoo.hub import BUNDLED_MIRROR, sha256_file

    entry = zoo.get_entry(name)
    folder = BUNDLED_MIRROR / entry.weights.repo_id
    assert json.loads((folder / "config.json").read_text()) == entry.config_json()
    assert sha256_file(folder / "config.json") == entry.weights.sha256["config.json"]
    assert json.loads((folder / "sampler_config.json").read_text()) == entry.sampler_config_json()
    assert (folder / "README.md").read_text() == mirror_card(entry), "run `python -m zoo.cards` to regenerate"


def test_bundled_evaluation_classifier_classifies_real_test_digits(shared_data):
    clf = zoo.load("classifier-mnist")
    x, y = load_tensor(zoo.get_entry("classifier-mnist"), "test", shared_data, limit=2000, labels=True)
    with torch.no_grad():
        accuracy = (clf.net(x, output="logits").argmax(1) == y).double().mean().item()
    assert accuracy > 0.97  # 0.987 measured on all 10,000 (model_cards/classifier-mnist.eval.json)
