"""Where every artefact of the pipeline lives, relative to the project root (see dvc.yaml).

Stages read each other's outputs through these names only; they never import each other.
"""

from pathlib import Path

PARAMS = Path("params.yaml")
STAGE_TIMES = Path("metrics/time")  # <stage>.json: the stage's wall seconds and peak memory
RESOLVED = Path("metrics/resolved")  # <stage>.json: the params it ran with (params.resolved)
RUN_STAGES = ("fetch", "features", "audit", "train", "finetune", "evaluate")  # a run's wall time
STUDY = Path("study")  # runs.yaml: the study's runs (transfer.study); results.json: their results
STUDY_RUNS = STUDY / "runs.yaml"
STUDY_RESULTS = STUDY / "results.json"

# fetch
PREPARED = Path("data/prepared")  # {train,val,test}_{x,y}.npy: uint8 images, int labels
CLASSES = PREPARED / "classes.json"
DATASET = PREPARED / "dataset.json"  # layout, test set, stored size, resize mode

# features
FEATURES = Path("features")  # {train,val,test}_{x,y}.npy: float16 features, int labels
EXTRACTOR = Path("models/extractor.keras")
FEATURES_METRICS = Path("metrics/features.json")
SHARDS = Path("shards/features")  # `feature_shards --shard I/N` outputs, git-ignored

# audit
NEAR_COPIES = Path("eval/near_copies.csv")  # per test image: its closest train/val and test image
AUDIT = Path("metrics/audit.json")

# train
HEAD = Path("models/head.keras")
TRAIN_LIVE = Path("dvclive/train")

# finetune
FINETUNED = Path("models/finetuned.keras")
FINETUNE_LIVE = Path("dvclive/finetune")

# evaluate
EXPORTS = (Path("models/model.keras"), Path("models/cifar10.h5"))
EVALUATION = Path("metrics/evaluate.json")
PREDICTIONS = Path("eval/predictions.csv")
CLASS_MAPS = Path("eval/class_maps.npz")  # Grad-CAM maps of a sample of test images

# summary
SUMMARY = Path("metrics/summary.json")  # the headline numbers: dvc.yaml's only metrics file

# report
REPORT = Path("report")
TEMPLATES = REPORT / "templates"
NOTES = REPORT / "notes.md"
FIGURES = REPORT / "figures"
PAPER, HTML, MEDIUM = REPORT / "paper.md", REPORT / "paper.html", REPORT / "medium.md"
PDF, SITE, DEVTO = REPORT / "paper.pdf", REPORT / "site", REPORT / "devto.md"
