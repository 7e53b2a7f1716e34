#!/bin/bash
# Regenerate results/features/ (`make features`): GRADIEND on the shipped features gender, number-3sg-3pl and
# person for both zoo models with the cpu protocol, then their top-k overlap matrices and the report.
#   zoo:bert-tiny-mlm: run seeds 0, 1, 2, each training all three GRADIEND seeds (seed and run stability)
#   zoo:smollm2-135m:  run seed 0, stopping at the first converged GRADIEND seed (about an hour a feature)
# The full runs (checkpoints included) stay in $FEATURE_RUNS; results/features/ keeps the small artefacts.
# MODELS and FEATURES restrict it, e.g. MODELS=bert-tiny-mlm make features.
set -euo pipefail
RUNS=${FEATURE_RUNS:-build/features}
OUT=results/features
BIN=${BIN:-.venv/bin}
B="$BIN/gradiend-bench"
FEATURES=${FEATURES:-"gender number-3sg-3pl person"}
MODELS=${MODELS:-"bert-tiny-mlm smollm2-135m"}

run() {  # model feature seed dir [train flags]; wall seconds per step in wall_seconds.json (read by `report`)
  local model=$1 feature=$2 seed=$3 dir=$4 t0 t1 t2 t3 t4
  shift 4
  [ -f "$dir/selection.json" ] && return 0
  t0=$(date +%s)
  [ -f "$dir/settings.json" ] || "$B" gradiend data --model "$model" --feature "$feature" --seed "$seed" --dir "$dir"
  t1=$(date +%s)
  [ -f "$dir/training.json" ] || "$B" gradiend train --dir "$dir" "$@"
  t2=$(date +%s)
  [ -f "$dir/encoder.json" ] || "$B" gradiend eval-encoder --dir "$dir"
  t3=$(date +%s)
  "$B" gradiend eval-decoder --dir "$dir"
  t4=$(date +%s)
  # a resumed run counts only the steps it ran
  echo "{\"data\": $((t1 - t0)), \"train\": $((t2 - t1)), \"encoder\": $((t3 - t2)), \"decoder\": $((t4 - t3)), \"total\": $((t4 - t0))}" \
    > "$dir/wall_seconds.json"
}

keep() {  # the small artefacts of one run folder
  local dir=$1 dest=$2
  mkdir -p "$dest/data"
  for f in settings.json training.json encoder.json encoder_test.csv encoder_test.png convergence.png \
           decoder_grid.csv decoder_grid.png selection.json gradiend.json wall_seconds.json; do
    [ -f "$dir/$f" ] && cp "$dir/$f" "$dest/$f"
  done
  cp "$dir/data/data.json" "$dest/data/"  # not the templates: they are corpus text
}

for model in $MODELS; do
  dirs=()
  for feature in $FEATURES; do
    if [ "$model" = bert-tiny-mlm ]; then seeds="0 1 2"; flags="--min-convergent-seeds 3"; else seeds=0; flags=""; fi
    for seed in $seeds; do
      dir="$RUNS/$model/$feature-seed$seed"
      # shellcheck disable=SC2086
      run "zoo:$model" "$feature" "$seed" "$dir" $flags
      keep "$dir" "$OUT/$model/$feature-seed$seed"
      dirs+=("$dir")
    done
  done
  "$B" gradiend compare "${dirs[@]}" --top-k 1000 --out "$OUT/$model/overlap"   # |W_d − W_d⁰|, the default
  "$B" gradiend compare "${dirs[@]}" --top-k 1000 --importance weight --out "$OUT/$model/overlap-weight"  # |W_d|
  "$B" gradiend report "${dirs[@]}" --out "$OUT/$model/report"
done
