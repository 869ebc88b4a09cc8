#!/usr/bin/env bash
# Full MCL-JCV benchmark: HiNeRV (XXS/XS/S/M/L, Q6), x265 veryslow RA, optionally HM-18.0 RA; then
# BD-rate against the published HiNeRV MCL-JCV points and an RD plot. Resumable.
#
#   tools/run_mcl.sh DATA_DIR [OUT_DIR] [extra `hinerv bench run` options]
set -euo pipefail
DATA=${1:?usage: run_mcl.sh DATA_DIR [OUT_DIR] [options...]}
OUT=${2:-runs/mcl-jcv}
shift $(( $# >= 2 ? 2 : 1 ))
SIZES=${SIZES:-xxs,xs,s,m,l}

hinerv datasets check "$DATA" --dataset mcl-jcv
hinerv bench run --dataset mcl-jcv --root "$DATA" -o "$OUT" -c hinerv --sizes "$SIZES" --bits 6 "$@"
hinerv bench run --dataset mcl-jcv --root "$DATA" -o "$OUT" -c x265-veryslow-ra "$@"
if [[ -n "${HM_BIN:-}" && -n "${HM_CFG:-}" ]]; then
  hinerv bench run --dataset mcl-jcv --root "$DATA" -o "$OUT" -c hm-18.0-ra \
    --hm-bin "$HM_BIN" --hm-cfg "$HM_CFG" --intra-period "${HM_INTRA:-32}" "$@"
fi

hinerv bdrate "$OUT/hinerv-full.json" "$OUT/x265-veryslow-ra.json" --metric psnr-rgb
hinerv bdrate "$OUT/hinerv-full.json" @hinerv-mcljcv --metric psnr-rgb
hinerv plot "$OUT"/*.json @hinerv-mcljcv -o "$OUT/rd.png" --title "MCL-JCV"
