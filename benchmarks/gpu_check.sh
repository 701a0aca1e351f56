#!/usr/bin/env bash
# GPU check, run on a lent accelerator machine (see README "GPU"): the same stages as
# `dvc repro`, on the JAX backend, with evaluate.repeats=2 run one at a time, to confirm
# that training lands on the GPU by itself and to time it. Needs the keras and pydantic
# wheels in .whl/ (the machine has JAX, pandas, scikit-learn, matplotlib already).
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src" KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false LSTMOPS_ROOT="$PWD"
OUT="${OUT:-/tmp/gpu-out}"; mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
python3 - <<'PY'
import yaml
p = yaml.safe_load(open("params.yaml"))
p["evaluate"].update(repeats=2, workers=1)
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
for problem in ${PROBLEMS:-damped_sine addition cumulative_sum moving_square echo rectangles}; do
  python3 stages/generate.py "$problem"
  python3 stages/prepare.py "$problem"
  start=$SECONDS
  python3 stages/evaluate.py "$problem" 2>&1 | grep -v -i warning
  echo "$problem evaluate wall $((SECONDS - start)) s"
  cp "metrics/$problem/timings.json" "$OUT/$problem-timings.json"
done
