#!/usr/bin/env bash
# Why do FLUID and the token-level fusions lose on real frozen features? Each step is one bench over the
# check set (docs/checkset.md) into one runs directory; decisions use the validation split only
# (python benchmarks/real/val_table.py RUNS); test numbers are read for the final settings only.
#   bash benchmarks/real/fluid_investigation.sh [RUNS_DIR] [STEP...]
set -euo pipefail
RUNS=${1:-runs/fluid-investigation}; shift || true
DATA=${FUSIONZOO_CHECKSET_DATA:-/work/data/checkset}
ENC=${FUSIONZOO_CHECKSET_ENCODERS:-/work/data/encoders}
export HF_HUB_OFFLINE=1
COMMON=(--dataset glami1m --data-dir "$DATA" --out "$RUNS"
        --image-encoder "timm:tf_efficientnet_lite0@$ENC/efficientnet_lite0.safetensors"
        --text-encoder "hf:$ENC/all-MiniLM-L6-v2" --seeds "${SEEDS:-0,1}")
QUICK=(--config quick --no-unimodal --no-probe)   # the quick preset's training settings: D=64, lr 2e-3, batch 64
step() { echo "== $1"; shift; fusionzoo bench "${COMMON[@]}" "$@" || true; }
steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(a b c d e)
for s in "${steps[@]}"; do case $s in
  a) step "A: quick settings, the baselines and FLUID's components" "${QUICK[@]}" --with-unimodal --with-probe \
       --fusions 'concat_mlp+film+fluid+fluid@mlp+fluid:contrastive=false' ;;
  b) step "B: lr 5e-4" "${QUICK[@]}" --lr 5e-4 --fusions 'concat_mlp+film+fluid' ;;
  c) step "C: D=256, lr 5e-4" "${QUICK[@]}" --lr 5e-4 --dim 256 --fusions 'concat_mlp+film+fluid' ;;
  d) step "D: FLUID variants at D=256, lr 5e-4" "${QUICK[@]}" --lr 5e-4 --dim 256 \
       --fusions 'fluid:norm=pre+fluid:queries=32+fluid:contrastive_positives=duplicates+fluid:qtransform=false' ;;
  e) step "E: more epochs" "${QUICK[@]}" --lr 5e-4 --epochs 40 --fusions 'concat_mlp+fluid' ;;
  *) echo "unknown step $s"; exit 2 ;;
esac; done
python "$(dirname "$0")/val_table.py" "$RUNS"
