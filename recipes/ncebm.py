"""Train a noise-conditional energy entry (E(x, sigma) = |x - D(x, sigma)|^2 / (2 sigma^2), Salimans & Ho 2021) by
denoising score matching over a continuous sigma distribution, with Accelerate.

    accelerate launch recipes/ncebm.py --entry ncebm-mnist --data-dir ../shared/datasets [--resume latest]
    python recipes/ncebm.py --entry ncebm-mnist --max-steps 10 --set model.architecture.channels=8
"""
from zoo.training import main

if __name__ == "__main__":
    main("ncebm")
