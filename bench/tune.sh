#!/usr/bin/env bash
# Validation-only tuning of the fine-tuning recipe (EfficientNetLite0, ImageNet weights), as run
# for the README's "Results": each variant runs `fetch` to `finetune` (never `evaluate`, so the
# test set is never read) on a stratified share of CIFAR-10, and prints its best validation
# accuracies. Usage, from a clone of this repository with the project's environment active:
#   bash bench/tune.sh PATH/TO/cifar10-jpg.tar.gz [FRACTION ["VARIANT" ...]] > tuning.tsv
# where a VARIANT is space-separated key=value params (default: all of those below).
set -euo pipefail
data=${1:?path to the CIFAR-10 image folder or archive}
fraction=${2:-0.2}
common=(-S data.source=folder -S "data.path=$data" -S "data.fraction=$fraction")
variants=(
  # round 1, 2 epochs each: input size, peak learning rate, and the Keras guide's recipe
  "model.input_size=64 finetune.epochs=2"
  "model.input_size=96 finetune.epochs=2"
  "model.input_size=128 finetune.epochs=2"
  "model.input_size=96 finetune.learning_rate=0.0003 finetune.epochs=2"
  "model.input_size=96 finetune.learning_rate=0.002 finetune.epochs=2"
  "model.input_size=96 finetune.layers=20 finetune.learning_rate=0.00001 finetune.weight_decay=0 finetune.warmup=0 finetune.epochs=2"
  # round 2, about the same compute as 128 px for 2 epochs: smaller inputs, more epochs
  "model.input_size=96 finetune.epochs=3"
  "model.input_size=64 finetune.epochs=5"
)
if (( $# > 2 )); then variants=("${@:3}"); fi
printf 'variant\thead_val_accuracy\tfinetune_val_accuracy\tseconds\n'
for variant in "${variants[@]}"; do
  sets=()
  for kv in $variant; do sets+=(-S "$kv"); done
  git checkout -- params.yaml  # `dvc exp run` leaves the last variant's params in the workspace
  start=$(date +%s)
  dvc exp run finetune "${common[@]}" "${sets[@]}" >&2
  python - "$variant" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
head = json.load(open("dvclive/train/metrics.json"))["best_val_accuracy"]
tuned = json.load(open("dvclive/finetune/metrics.json"))["best_val_accuracy"]
print(f"{sys.argv[1]}\t{head:.4f}\t{tuned:.4f}\t{sys.argv[2]}")
PY
done
