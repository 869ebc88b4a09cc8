# Sourced by the device scripts (tools/gpu_check.sh, tools/gpu_budget.sh): the Python to use and its path.
# Wheels in $WHL (default .gpu/whl where it exists; e.g. av, constriction, pytorch-msssim for the machine's
# python3, see ../shared/gpu/README.md) are installed into /tmp/site; the code runs from this checkout
# through PYTHONPATH=/tmp/site:$PWD (no `pip install -e`). Expects to run from the project root; sets PY,
# PYTHONPATH and PYTHONUNBUFFERED.
[ -f hinerv/__init__.py ] || { echo "run from the project root" >&2; exit 2; }
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
[ -z "${WHL:-}" ] && [ -d .gpu/whl ] && WHL=.gpu/whl
if [ -n "${WHL:-}" ] && ls "$WHL"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHL"/*.whl || { echo "wheel install failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
