"""Train a zoo evaluation classifier (the feature extractor of classifier-FID/KID/IS) with Accelerate.

    accelerate launch recipes/classifier.py --entry classifier-mnist --data-dir ../shared/datasets
"""
from zoo.training import main

if __name__ == "__main__":
    main("classifier")
