"""Train an MDSM entry (Li, Chen, Sommer 2023) with Accelerate.

    accelerate launch recipes/mdsm.py --entry mdsm-mnist --data-dir ../shared/datasets [--resume latest]
    python recipes/mdsm.py --entry mdsm-mnist --max-steps 10 --set model.architecture.width=8
"""
from zoo.training import main

if __name__ == "__main__":
    main("mdsm")
