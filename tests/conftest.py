"""Test session set-up: every Hub call goes to a loopback server (tests/hub_server.py) through HF_ENDPOINT,
with a throw-away HF cache. These variables must be set before huggingface_hub is imported."""
import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest

_sock = socket.socket()
_sock.bind(("127.0.0.1", 0))
HUB_PORT = _sock.getsockname()[1]
_sock.close()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="zoo-test-hf-")
os.environ["HF_TOKEN"] = "hf_loopback_test_token"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("ZOO_HUB_MIRROR", None)
os.environ["ZOO_DATA_CACHE"] = tempfile.mkdtemp(prefix="zoo-test-data-")

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import serve  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def hub():
    server, state = serve(HUB_PORT)
    yield state
    server.shutdown()


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "ylecun" / "mnist").is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (the ../shared checkout); synthetic tests cover the logic")
    return SHARED_DATA


@pytest.fixture
def synthetic_mnist(tmp_path, monkeypatch):
    """64 synthetic 28x28 'digits' (a bar at one of 4 places) as ylecun/mnist/mnist/train-*.parquet; private cache."""
    import datasets
    import numpy as np
    from PIL import Image

    images = []
    for i in range(64):
        a = np.zeros((28, 28), np.uint8)
        a[4 + 5 * (i % 4): 8 + 5 * (i % 4), 6:22] = 255
        images.append(Image.fromarray(a, mode="L"))
    folder = tmp_path / "data" / "ylecun" / "mnist" / "mnist"
    folder.mkdir(parents=True)
    ds = datasets.Dataset.from_dict({"image": images, "label": [i % 4 for i in range(64)]},
                                    features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}))
    ds.to_parquet(str(folder / "train-00000-of-00001.parquet"))
    monkeypatch.setenv("ZOO_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "data"


def tiny_config(width: int = 4, shape=(1, 8, 8), depth: int = 12) -> dict:
    """config.json of a tiny MDSM ResNet, fast on a CPU."""
    return {"entry": "tiny", "family": "mdsm", "input_shape": list(shape), "data_range": [0.0, 1.0], "sigma0": 0.1,
            "architecture": {"class": "MDSMResNet", "width": width, "depth": depth}}


TINY_SAMPLER = {
    "default": {"name": "annealed_langevin", "schedule": "exp", "step_size": 0.02, "t_max": 100.0,
                "n_hold": 5, "n_anneal": 10, "n_final": 5},
    "presets": {"short": {"n_hold": 1, "n_anneal": 2, "n_final": 1}},
}


def tiny_model(**kwargs):
    import zoo

    return zoo.EnergyModel(tiny_config(**kwargs), sampler_config=TINY_SAMPLER)
