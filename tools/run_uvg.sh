#!/usr/bin/env bash
# Full UVG benchmark: HiNeRV (S/M/L/XL/XXL, Q6), x265 veryslow RA, optionally HM-18.0 RA; then BD-rate
# against the published anchors and an RD plot. Resumable: rerun after an interruption.
#
#   tools/run_uvg.sh DATA_DIR [OUT_DIR] [extra `hinerv bench run` options, e.g. -j 4 --ray-address auto]
#   HM_BIN=.../TAppEncoderStatic HM_CFG=.../encoder_randomaccess_main.cfg tools/run_uvg.sh data/UVG
set -euo pipefail
DATA=${1:?usage: run_uvg.sh DATA_DIR [OUT_DIR] [options...]}
OUT=${2:-runs/uvg}
shift $(( $# >= 2 ? 2 : 1 ))
SIZES=${SIZES:-s,m,l,xl,xxl}

hinerv datasets check "$DATA" --dataset uvg
hinerv bench run --dataset uvg --root "$DATA" -o "$OUT" -c hinerv --sizes "$SIZES" --bits 6 "$@"
hinerv bench run --dataset uvg --root "$DATA" -o "$OUT" -c x265-veryslow-ra "$@"
if [[ -n "${HM_BIN:-}" && -n "${HM_CFG:-}" ]]; then
  hinerv bench run --dataset uvg --root "$DATA" -o "$OUT" -c hm-18.0-ra \
    --hm-bin "$HM_BIN" --hm-cfg "$HM_CFG" --intra-period "${HM_INTRA:-128}" "$@"
fi

hinerv bdrate "$OUT/hinerv-full.json" "$OUT/x265-veryslow-ra.json" --metric psnr-rgb
hinerv bdrate "$OUT/hinerv-full.json" @hm18-ra-uvg --metric psnr-rgb
hinerv bdrate "$OUT/hinerv-full.json" @hinerv-uvg --metric psnr-rgb
hinerv plot "$OUT"/*.json @hinerv-uvg @hm18-ra-uvg -o "$OUT/rd.png" --title "UVG"
