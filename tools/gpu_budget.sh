#!/bin/bash
# Issue 19's GPU figure in one device call: Big Buck Bunny at its full 1280x720, all 132 frames, hinerv's
# default encode at a fixed wall time per point on CUDA (tools/bench_budget.py --device cuda --skip x265).
# x265 veryslow on the same frames needs no GPU: it is computed on a CPU machine
# (docs/results/budget/bunny720/x265-veryslow-ra.json), and so are the BD-rates: put this call's
# hinerv JSON beside it in a run folder and publish with `tools/bench_budget.py --skip hinerv,x265`.
# The run folder is runs/gpu-budget (ignored by git and not carried, so kept between calls on a warm machine:
# a second call publishes every point run so far; finished points are not run again). What comes back,
# under ${OUT:-/tmp/gpu-out}: log.txt, pub/summary.json, pub/<clip>/hinerv-*.json and rd.png, and each
# point's own file under points/ (to merge the calls of a machine that went cold in between).
# Four points at 2 minutes take about 9 minutes: run "xs,s" and "m,l" as two calls where a call is capped
# at 10 minutes.
#
# Usage (from the project root; the clip at $CLIP, default .gpu/clips/bunny_1280x720_132f.mp4; wheels in
# $WHL, default .gpu/whl, as for tools/gpu_check.sh):
#   bash tools/gpu_budget.sh [SIZES [BUDGET]]     # default: xs,s,m,l 2m
#   bash tools/gpu_budget.sh --cpu-smoke          # the same steps on the CPU: 8 frames at 128x72, xxs, 20 s
set -u
SMOKE=0
ARGS=()
for a in "$@"; do
  case "$a" in
    --cpu-smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) ARGS+=("$a") ;;
  esac
done
# shellcheck source=tools/gpu_env.sh
. tools/gpu_env.sh
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
CLIP=${CLIP:-.gpu/clips/bunny_1280x720_132f.mp4}
[ -f "$CLIP" ] || { echo "clip $CLIP not found (copy ../shared/clips/bunny_1280x720_132f.mp4 there)" >&2; exit 2; }
SIZES=${ARGS[0]:-xs,s,m,l}
BUDGET=${ARGS[1]:-2m}
if [ "$SMOKE" = 1 ]; then
  DEV=cpu; SPEC="smoke=$CLIP:8:128"; SIZES=${ARGS[0]:-xxs}; BUDGET=${ARGS[1]:-20s}; RUN=${RUN:-/tmp/gpu-budget-smoke}; THREADS=1
else
  DEV=cuda; SPEC="bunny720=$CLIP"; RUN=${RUN:-runs/gpu-budget}; THREADS=4
fi
LOG="$OUT/log.txt"
{
  echo "gpu_budget $(date -u +%FT%TZ) device $DEV sizes $SIZES budget $BUDGET commit $(git rev-parse --short HEAD 2>/dev/null)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$LOG"
"$PY" tools/bench_budget.py --clip "$SPEC" --clips-dir "$RUN/clips" --out "$RUN" --results "$OUT/pub" \
  --time-budget "$BUDGET" --sizes "$SIZES" --device "$DEV" --skip x265 --threads "$THREADS" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
for d in "$RUN"/*/hinerv-*/points; do [ -d "$d" ] && cp -r "$d" "$OUT/"; done
echo "gpu_budget: rc $rc" | tee -a "$LOG"
exit "$rc"
