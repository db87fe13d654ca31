#!/usr/bin/env bash
# Every GPU measurement of issues 5 and 18 in one call of under 10 minutes (9 min 25 s of caps) (each part has its own time cap):
#
#   1. training steps/s at 128^3, batch 2, 4, 8, AMP, SegResNet and Attention U-Net
#      (+ the same step with MONAI's DiceFocalLoss at batch 2: the cost of L1DFL in a step)  <= 100 s
#   2. whole-body sliding-window inference, 352 x 352 x 480 voxels, 128^3 windows, AMP        <= 60 s
#   3. python benchmarks/losses.py --device cuda (the loss benchmark)                          <= 60 s
#   4. data waiting vs compute with the real CacheDataset + DataLoader pipeline, 128^3 patches,
#      batch 2, 8 workers, 8 synthetic 256 x 256 x 400 cases at 2 mm (goal: wait < 10 % of a step),
#      and the CPU cost of one sample against MONAI's default usage                          <= 100 s
#   5. python benchmarks/gpu_study.py: the demo study end to end on CUDA (train with AMP, predict,
#      evaluate, figures; 8 epochs of 10 steps per model), its re-run, and an interrupted
#      training resumed (2026-11-27: the full 40 epochs did not fit 170 s)                 <= 200 s
#   6. python benchmarks/nnunet_loss.py: one nnU-Net train_step (AMP) at 128^3, batch 2, with L1DFL
#      and DFL against nnU-Net's default Dice+CE (time and peak memory ratios; needs nnunetv2,
#      the nnunet extra; alone: python benchmarks/nnunet_loss.py --device cuda --patch 128 128 128)  <= 45 s
#
# Figures are printed and written to benchmarks/results/gpu-<date>.txt (with the GPU's name).
# Usage: bash benchmarks/gpu.sh            (PYTHON=/path/to/python to choose the interpreter)
#        On a machine whose Python has torch but not the rest (2026-11-27: the H200 image lacked
#        monai, nibabel, pydicom, connected-components-3d and plotly), install those wheels first,
#        e.g. pip install --no-deps --target /tmp/site <wheels>; PYTHONPATH=/tmp/site:$PWD.
#        bash benchmarks/gpu.sh --dry-run  (the same commands on the CPU with tiny sizes, to check the
#                                           script itself; writes to /tmp, not to benchmarks/results)
set -u -o pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--dry-run" ]; then
    DEV=(--device cpu --no-amp); SIZE=32; BATCHES=(1 2); STEPS=(--warmup 1 --steps 1); WORKERS=2; CASES=2
    CASE_SHAPE=(48 48 64); PSTEPS=3; WB=(64 64 96); ROI=32; LOSS_ARGS=(--device cpu --shape 1 2 32 32 32 --repeats 1)
    STUDY_ARGS=(--profile ci); NNUNET_ARGS=(--device cpu --patch 32 32 32 --repeats 1)
    OUT_DIR=/tmp; TAG=gpu-dryrun
else
    DEV=(--device cuda --amp); SIZE=128; BATCHES=(2 4 8); STEPS=(--warmup 3 --steps 10); WORKERS=8; CASES=8
    CASE_SHAPE=(256 256 400); PSTEPS=24; WB=(352 352 480); ROI=128; LOSS_ARGS=(--device cuda)
    STUDY_ARGS=(--profile demo --epochs 8); NNUNET_ARGS=(--device cuda --patch 128 128 128 --batch 2 --repeats 3)
    OUT_DIR=benchmarks/results; TAG=gpu
fi

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DATE=$(date +%Y-%m-%d)
OUT=${OUT_DIR}/${TAG}-${DATE}.txt
mkdir -p "${OUT_DIR}"
export PYTHONUNBUFFERED=1
START=$(date +%s)

part() {  # part <seconds> <title> <command...>: run with a time cap, report its status
    local cap=$1 title=$2
    shift 2
    echo
    echo "################ ${title} (cap ${cap} s)"
    timeout --kill-after=10 "${cap}" "$@"
    local rc=$?
    if [ "${rc}" -eq 124 ] || [ "${rc}" -eq 137 ]; then echo "!! ${title}: stopped at the ${cap} s cap"; fi
    if [ "${rc}" -ne 0 ]; then echo "!! ${title}: exit status ${rc}"; fi
    echo "   (${title}: $(( $(date +%s) - START )) s since start)"
}

{
    echo "# pcatools GPU benchmarks, ${DATE} $(date +%H:%M:%S)"
    echo "# git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/# GPU: /'
    fi
    "${PYTHON}" -c "import torch, monai; print(f'# torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, MONAI {monai.__version__}, GPU available: {torch.cuda.is_available()}')"
    echo "# CPU cores: $(nproc)"

    part 100 "training steps, ${SIZE}^3" \
        "${PYTHON}" benchmarks/train_step.py "${DEV[@]}" --sizes "${SIZE}" --batch "${BATCHES[@]}" \
        --peer-sizes "${SIZE}" "${STEPS[@]}" --no-pipeline --no-inference
    part 60 "whole-body sliding-window inference" \
        "${PYTHON}" benchmarks/train_step.py "${DEV[@]}" --no-steps-bench --no-pipeline \
        --wb-shape "${WB[@]}" --roi "${ROI}" --sw-batch 4
    part 60 "loss benchmark" "${PYTHON}" benchmarks/losses.py "${LOSS_ARGS[@]}"
    part 100 "data pipeline vs compute" \
        "${PYTHON}" benchmarks/train_step.py "${DEV[@]}" --sizes "${SIZE}" --batch "${BATCHES[0]}" \
        --no-steps-bench --no-inference --workers "${WORKERS}" --pipeline-cases "${CASES}" --pipeline-size "${SIZE}" \
        --case-shape "${CASE_SHAPE[@]}" --pipeline-steps "${PSTEPS}"
    part 200 "study end to end" "${PYTHON}" benchmarks/gpu_study.py "${STUDY_ARGS[@]}"
    part 45 "nnU-Net train_step: L1DFL vs Dice+CE" "${PYTHON}" benchmarks/nnunet_loss.py "${NNUNET_ARGS[@]}"
    echo
    echo "# total $(( $(date +%s) - START )) s"
} 2>&1 | tee "${OUT}"
echo "written: ${OUT}"
