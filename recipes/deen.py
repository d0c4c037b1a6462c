"""Train a DEEN entry (Saremi et al. 2018) with Accelerate.

    accelerate launch recipes/deen.py --entry deen-mnist --data-dir ../shared/datasets
    python recipes/deen.py --entry deen-2d-spiral
"""
from zoo.training import main

if __name__ == "__main__":
    main("deen")
