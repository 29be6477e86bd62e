#!/usr/bin/env bash
# ResNet-20 (identity + projection shortcuts) on CIFAR-10, on the CPU: train, prepare and
# fine-tune the G-DNN at L = 5, convert, evaluate every test image with closed_form and the
# first CLOCKED_LIMIT with clocked, then static T_il from 1,000 training images; copies the
# artefacts that docs/results.md quotes into docs/results/resnet20/.
#
#   bash benchmarks/resnet20_cifar.sh [RUN_DIR]      (about 1.5 h on 2 CPU cores)
set -euo pipefail
RUN=${1:-runs/resnet20}
EPOCHS=${EPOCHS:-8}
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-2}
CLOCKED_LIMIT=${CLOCKED_LIMIT:-500}
DATA=(--dataset cifar10)
OUT=docs/results/resnet20
mkdir -p "$OUT"
[ -f "$RUN/dnn.safetensors" ] || tdsnn train "${DATA[@]}" --model resnet20_cifar --epochs "$EPOCHS" --out "$RUN" --quiet
[ -f "$RUN/gdnn_L5.safetensors" ] || tdsnn finetune --from "$RUN" --L 5 --epochs "$FINETUNE_EPOCHS" --quiet
tdsnn convert --from "$RUN" --L 5 --quiet
tdsnn evaluate --from "$RUN" --L 5 --backends closed_form --quiet
cp "$RUN/evaluation.json" "$OUT/evaluation.json"
tdsnn report --from "$RUN"
cp "$RUN/report.json" "$OUT/report.json"
tdsnn evaluate --from "$RUN" --L 5 --backends clocked --limit "$CLOCKED_LIMIT" --quiet
cp "$RUN/evaluation.json" "$OUT/evaluation_clocked.json"
# static T_il (fixed delays) in a copy of the run folder
rm -rf "$RUN-static" && cp -r "$RUN" "$RUN-static" && rm -f "$RUN-static/.tdsnn.lock"
tdsnn convert --from "$RUN-static" --L 5 --calibrate 1000 --quiet
tdsnn evaluate --from "$RUN-static" --L 5 --backends closed_form --quiet
cp "$RUN-static/evaluation.json" "$OUT/evaluation_static.json"
python benchmarks/results_tables.py
