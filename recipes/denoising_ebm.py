"""Train a Denoising-EBM entry (Zeng, Algorithm 1) with Accelerate.

    accelerate launch recipes/denoising_ebm.py --entry denoising-ebm-mnist --data-dir ../shared/datasets
    accelerate launch recipes/denoising_ebm.py --entry denoising-ebm-cifar10 --data-dir ../shared/datasets
"""
from zoo.training import main

if __name__ == "__main__":
    main("denoising_ebm")
