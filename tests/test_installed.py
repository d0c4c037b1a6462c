"""The package installed as a user gets it (`pip install .`, not editable: no hub_mirror/, no model_cards/ beside it),
with the weights from a mirror given by $ZOO_HUB_MIRROR, shows what the source checkout shows."""
import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

SHOW = """
import json, zoo
m = zoo.load("ncebm-mnist")
x = m.sample(2, seed=0, progress=False)
info = zoo.info("ncebm-mnist")
info.pop("source")  # the entry's YAML file: inside the installed package or the checkout
print(json.dumps({"zoo": zoo.__file__, "list": zoo.list_models(), "info": info, "sample": x.double().sum().item()}))
"""


def show(cwd, env) -> dict:
    proc = subprocess.run([sys.executable, "-c", SHOW], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_an_installed_package_lists_measures_loads_and_samples_as_the_checkout_does(tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(REPO_ROOT)], check=True, timeout=300, capture_output=True)
    assert (site / "zoo" / "entries" / "ncebm-mnist.yaml").is_file() and not (site / "hub_mirror").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ZOO_HUB_MIRROR")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    installed = show(tmp_path, {**env, "PYTHONPATH": str(site), "ZOO_HUB_MIRROR": str(REPO_ROOT / "hub_mirror")})
    checkout = show(REPO_ROOT, env)
    assert installed["zoo"].startswith(str(site)) and checkout["zoo"].startswith(str(REPO_ROOT / "zoo"))
    assert installed["list"] == checkout["list"]
    measured = {row["name"]: row["measured"] for row in installed["list"]}
    assert measured["ncebm-mnist"].startswith("cFID") and measured["classifier-mnist"].startswith("test accuracy")
    assert installed["info"] == checkout["info"] and installed["info"]["measured"] == measured["ncebm-mnist"]
    assert installed["sample"] == checkout["sample"]
