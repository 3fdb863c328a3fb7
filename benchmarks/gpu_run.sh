#!/usr/bin/env bash
# The GPU checks in one call on a lent CUDA machine (its own python3 with torch):
# CUDA-vs-CPU parity of extraction, saliency and deletion curves, then the extraction
# benchmark with the 16 CPUs of such a node. Outputs go to ${OUT:-.}/gpu_*.
set -uo pipefail
out=${OUT:-.}
export PYTHONUNBUFFERED=1 PYTHONPATH=workflow/scripts
nvidia-smi -L
python3 -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)'
timeout 150 python3 benchmarks/gpu_parity.py --n 256 --saliency-images "${SAL:-8}" >"$out/gpu_parity.json" 2>"$out/gpu_parity.log"
echo "parity rc $?"; cat "$out/gpu_parity.json"
CNNATLAS_SLURM_GPU_CPUS=16 timeout "${EXTRACT_TIMEOUT:-400}" python3 benchmarks/extract.py \
  --device cuda --archs ${ARCHS:-resnet50 resnet18 vgg16} --n "${N:-4096}" --rss-archs ${RSS-resnet50} \
  >"$out/gpu_extract.json" 2>"$out/gpu_extract.log"
echo "extract rc $?"
grep -v '%|' "$out/gpu_extract.log" | grep '^{' | cut -c1-600
cat "$out/gpu_extract.json"
