#!/bin/bash
# One check of the CUDA path on a GPU machine, in at most about 6 minutes:
#   1. the gpu-marked tests (tests/gpu: both pipelines on CUDA, CUDA vs CPU decodes, resume across devices,
#      --compile, --precision);
#   2. the speed table: tools/bench_speed.py, uvg-hinerv-s at 1920x1080, 16 frames, eager and --compile;
#   3. an end-to-end timed `hinerv encode` and `hinerv decode` of the built-in 1080p 16-frame sample clip
#      (the encode report's `timings` say where the non-training time goes), then the library's decode
#      eager and with compile=True (phase timings: load, decode, write).
# Every step has its own time limit, cut to what is left of 335 s for the whole check; a failed or timed-out
# step is reported and the next one still runs.
# Logs and JSON go to ${OUT:-/tmp/gpu-out} (at most 8 flat files); the exit status is 1 if any step failed.
#
# Usage (from the project root):
#   bash tools/gpu_check.sh [WHEEL_DIR]          # WHEEL_DIR default: .gpu/whl when it exists
#   bash tools/gpu_check.sh --cpu-smoke          # the same steps on the CPU with tiny sizes (no GPU needed)
# Wheels in WHEEL_DIR (e.g. av, constriction, pytorch-msssim for the machine's python3, see
# ../shared/gpu/README.md) are installed into /tmp/site; the code runs from this checkout through
# PYTHONPATH=/tmp/site:$PWD (no `pip install -e`). E2E_ARGS overrides the end-to-end encode's options.
set -u
SMOKE=0
WHL=""
for a in "$@"; do
  case "$a" in
    --cpu-smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) WHL="$a" ;;
  esac
done
# shellcheck source=tools/gpu_env.sh
. tools/gpu_env.sh
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/gpu-check.XXXXXX); trap 'rm -rf "$WORK"' EXIT

if [ "$SMOKE" = 1 ]; then
  DEV=cpu; BENCH=(--sizes 64x64 --frames 2 --steps 2); SIZE=(64 64 4)
  ENC=(--size xxs --schedule tiny --bits 6)
  T_TEST=120; T_BENCH=120; T_COMPILE=120; T_ENC=120; BUDGET=900
  OPTIONAL=(bench-compile decode-compile)  # torch.compile on the CPU: refused or unsupported, not failed
else
  DEV=cuda; BENCH=(--preset uvg-hinerv-s --sizes 1920x1080 --frames 16 --steps 20); SIZE=(1920 1080 16)
  ENC=(--preset uvg-hinerv-s --schedule tiny --epochs 2 --bits 6)
  T_TEST=150; T_BENCH=45; T_COMPILE=130; T_ENC=60; BUDGET=350
  OPTIONAL=()
fi
DEADLINE=$((SECONDS + BUDGET))  # every step's limit is cut to what is left of the whole check
[ -n "${E2E_ARGS:-}" ] && read -r -a ENC <<< "$E2E_ARGS"
FAILED=()
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
step() {  # step NAME LIMIT_S LOG CMD...: run CMD with a time limit, its output appended to LOG
  local name=$1 limit=$2 log=$3; shift 3
  local left=$((DEADLINE - SECONDS)) t0=$SECONDS rc
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    say "step $name: skipped (the check's time is up)"; FAILED+=("$name"); return 1
  fi
  echo "### $name: $*" >> "$log"
  timeout --kill-after=5 "$limit" "$@" >> "$log" 2>&1
  rc=$?
  say "step $name: rc $rc, $((SECONDS - t0)) s$([ $rc = 124 ] && echo " (time limit $limit s)")"
  if [ $rc != 0 ] && [[ " ${OPTIONAL[*]} " != *" $name "* ]]; then FAILED+=("$name"); fi
  return $rc
}

say "gpu_check $(date -u +%FT%TZ) mode $([ $SMOKE = 1 ] && echo cpu-smoke || echo cuda) commit $(git rev-parse --short HEAD 2>/dev/null)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$SUMMARY"
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$SUMMARY"

# 1. the gpu-marked tests (skipped, not failed, without CUDA)
TO=()
"$PY" -c "import pytest_timeout" 2>/dev/null && TO=(--timeout 120)
# on a GPU machine with pytest-xdist the tests run 4 at a time (each is mostly process start-up and tiny
# kernels); else one by one, stopping at the first failure, compile last (the slowest: a cut-off loses least)
PAR=(-x -s)
[ "$SMOKE" = 0 ] && "$PY" -c "import xdist" 2>/dev/null && PAR=(-n 4 --tb=short)
step tests "$T_TEST" "$OUT/pytest.log" "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider "${PAR[@]}" "${TO[@]}" \
  tests/gpu/test_gpu_codec.py tests/gpu/test_gpu_resume.py tests/gpu/test_gpu_compile.py
grep -E "passed|failed|skipped|error" "$OUT/pytest.log" | tail -1 | tee -a "$SUMMARY"
grep -E "decode: max" "$OUT/pytest.log" | tee -a "$SUMMARY"

# 2. the speed table, eager then compiled
step bench "$T_BENCH" "$OUT/bench.log" "$PY" tools/bench_speed.py --device "$DEV" "${BENCH[@]}" --json "$OUT/speed.json"
step bench-compile "$T_COMPILE" "$OUT/bench.log" "$PY" tools/bench_speed.py --device "$DEV" "${BENCH[@]}" --compile \
  --json "$OUT/speed_compile.json"

# 3. end to end: sample clip, timed encode and decode
E2E="$OUT/e2e.log"
step sample 25 "$E2E" "$PY" -c "import sys; from hinerv.sample import write_sample
write_sample(sys.argv[1], width=int(sys.argv[2]), height=int(sys.argv[3]), frames=int(sys.argv[4]))" \
  "$WORK/clip.y4m" "${SIZE[@]}"
T0=$SECONDS
step encode "$T_ENC" "$E2E" bash -c 'o=$1; shift; "$@" > "$o"' _ "$OUT/encode.json" \
  "$PY" -m hinerv encode "$WORK/clip.y4m" -o "$WORK/clip.bin" --device "$DEV" --json -q "${ENC[@]}"
say "encode wall $((SECONDS - T0)) s (the process, imports included)"
T0=$SECONDS
step decode 25 "$E2E" bash -c 'o=$1; shift; "$@" > "$o"' _ "$OUT/decode.json" \
  "$PY" -m hinerv decode "$WORK/clip.bin" -o "$WORK/dec.y4m" --device "$DEV" --json -q
say "decode wall $((SECONDS - T0)) s (the process, imports included)"
# the library's decode, eager and through torch.compile (the CLI flag comes later), with its phase timings
step decode-compile 75 "$E2E" "$PY" -c "import json, sys
from hinerv.codec import decode_file
for c in (False, True):
    r = decode_file(sys.argv[1], sys.argv[2], device=sys.argv[3], compile=c)
    print('decode-api:', json.dumps({'compile': c, 'frames': r.frames, 'seconds': r.seconds, 'fps': r.fps,
                                     'timings': r.timings}))" \
  "$WORK/clip.bin" "$WORK/dec_c.y4m" "$DEV"

"$PY" - "$OUT" >> "$SUMMARY" 2>&1 <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
bench = {}
for name, label in (("speed.json", "eager"), ("speed_compile.json", "compile")):
    d = load(name)
    if d:
        r = next(iter(d.values()))[0]
        bench[label] = r
        print(f"bench {label}: train {r['train_ms_per_frame']:.1f} ms/frame-step, decode {r['decode_fps']:.1f} fps")
enc, dec = load("encode.json"), load("decode.json")
if enc:
    train, total = enc.get("train_seconds", 0.0), enc.get("encode_seconds", 0.0)
    print(f"encode: {total:.1f} s, training {train:.1f} s, outside training {total - train:.1f} s "
          f"({100 * (total - train) / max(train, 1e-9):.0f} % of training); psnr-rgb {enc.get('psnr-rgb', 0):.2f}")
    if "timings" in enc:
        print("encode timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in enc["timings"].items()))
api = {}
try:
    with open(os.path.join(out, "e2e.log")) as f:
        for ln in f:
            if ln.startswith("decode-api:"):
                d = json.loads(ln.split(":", 1)[1])
                api[d["compile"]] = d
except (OSError, ValueError):
    pass
rows = (("hinerv decode", dec, "eager"), ("decode_file", api.get(False), "eager"),
        ("decode_file compile", api.get(True), "compile"))
for label, d, ref in rows:
    if d:
        line = f"{label}: {d['frames']} frames in {d['seconds']:.2f} s = {d['fps']:.1f} fps (load included)"
        if ref in bench:
            line += f", {d['fps'] / bench[ref]['decode_fps']:.2f}x bench_speed's {ref} decode rate"
        if "timings" in d:
            line += "; " + ", ".join(f"{k} {v:.2f} s" for k, v in d["timings"].items())
        print(line)
PY
cat "$SUMMARY" | sed -n '/^bench /,$p'
if [ ${#FAILED[@]} -gt 0 ]; then
  say "FAILED: ${FAILED[*]}"
  exit 1
fi
say "all steps passed"
