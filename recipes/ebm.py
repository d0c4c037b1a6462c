"""Train an entry of the "ebm" family with any objective of Song & Kingma's "How to Train Your EBMs" (ml with
cd / pcd / replay negatives, sm, ssm, dsm, nce; also mdsm, deen) with Accelerate.

    accelerate launch recipes/ebm.py --entry ebm-2d-gmm-ml
    python recipes/ebm.py --entry ebm-2d-gmm-ml --set recipe.objective.name=ssm --set recipe.objective.variance_reduced=true
    accelerate launch recipes/ebm.py --entry ebm-mnist-ml --data-dir ../shared/datasets
"""
from zoo.training import main

if __name__ == "__main__":
    main("ebm")
