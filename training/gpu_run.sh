#!/usr/bin/env bash
# One call on a GPU machine: train the `gpu` config (bf16) for a wall budget, resumable, with
# the state and the best validated weights (our checkpoint format + sidecar) in $OUT.
#
#   bash training/gpu_run.sh [--minutes M] [--resume-from DIR] [--config gpu_multiclass]
#   bash training/gpu_run.sh --smoke                              # the same path on CPU, ~1 min
#
# $OUT (default runs/gpu-run) receives the run folder's files directly (at most 8 files:
# state.pt, best.pt/.json, last.pt/.json, log.jsonl, config.json, curve.png), so that a device
# call brings them back. Validation (and with it last.pt/best.pt) and the resumable state are
# written at least every minute, so a run cut short still returns weights. The GPU image lacks
# schedulefree: carry it as a wheel in .whl/ (see /work/.library/device/README.md); wheels
# found there are installed into /tmp/site first. --resume-from copies an earlier $OUT in.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=8
base=gpu
smoke=0
resume_from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --minutes) minutes="$2"; shift ;;
    --resume-from) resume_from="$2"; shift ;;
    --config) base="$2"; shift ;;  # gpu (default) or gpu_multiclass (10 native classes)
    *) echo "gpu_run.sh: unknown argument $1 (use --smoke, --minutes M, --resume-from DIR," \
            "--config gpu|gpu_multiclass)" >&2
       exit 2 ;;
  esac
  shift
done
out="${OUT:-runs/gpu-run}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python="${PYTHON:-python3}"  # the GPU image's python3 holds torch; here: PYTHON=.venv/bin/python
if [ -n "$resume_from" ] && [ "$resume_from" != "$out" ]; then
  cp -n "$resume_from"/* "$out"/ 2>/dev/null || true
fi
overrides="/tmp/gpu_run_config.$$.json"
if [ "$smoke" = 1 ]; then
  minutes=1
  # the tiny preset on CPU, validating every 15 s: the same loop, files and export path
  echo '{"base": "tiny", "name": "gpu-run-smoke", "ckpt_every_minutes": 0.25,
         "validation": {"every_minutes": 0.25, "relational": false}}' > "$overrides"
else
  "$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU here'"
  echo "{\"base\": \"$base\", \"name\": \"$base-run\", \"ckpt_every_minutes\": 1.0,
         \"validation\": {\"every_minutes\": 1.0}}" > "$overrides"
fi
"$python" -m training --config "$overrides" --out "$out" --resume --max-minutes "$minutes" --quiet
rm -f "$overrides"
"$python" - "$out" <<'PY'
import sys
from rdbpfn.checkpoint import load_checkpoint
loaded = load_checkpoint(f"{sys.argv[1]}/best.pt")
meta = loaded.meta
metric = meta["selected_by"]
print(f"best.pt: step {meta['step']}, {loaded.model.n_parameters():,} parameters, "
      f"validation {metric} {meta['validation'][metric]:.4f}, episodes per stage "
      f"{meta['episodes_per_stage']}")
PY
ls -la "$out"
