#!/usr/bin/env bash
# The GPU check in one call (no network needed): install the carried wheels into a temporary
# target, run the CUDA tests, then time the pipeline, the torch vs Numba renderers, a default
# run and a full fine-tune of the default classifier. Tables go to OUTDIR/summary.md, everything
# printed to OUTDIR/check.log. Each step has its own time cap and the whole check stops
# starting steps after CHECK_BUDGET seconds (default 470), so it ends within 8 minutes.
# CAP_SCALE=N multiplies every cap and the default budget (default 1, in --cpu mode 4).
#
#   benchmarks/gpu/prepare.sh                  # first, on a machine with PyPI
#   benchmarks/gpu/check.sh [OUTDIR]           # on the GPU machine (OUTDIR default: $OUT)
#   benchmarks/gpu/check.sh --cpu [OUTDIR]     # the same steps, small, on the CPU
#
# PYTHON picks the interpreter (default python3). The wheels are installed when
# benchmarks/gpu/wheels/ holds any and PYTHON is CPython 3.12 (what they are built for);
# otherwise PYTHON's own packages are used. benchmarks/gpu/data/ (from prepare.sh) is the
# data when present, else $EVOEMOTION_DATA or ../shared/data.
set -uo pipefail

mode=gpu
out="${OUT:-}"
for arg in "$@"; do
  case "$arg" in
    --cpu) mode=cpu ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "check.sh: unknown option $arg (use --cpu, or --help)" >&2; exit 2 ;;
    *) out="$arg" ;;
  esac
done
if [ -z "$out" ]; then
  echo "check.sh: give an output folder (or set OUT)" >&2
  exit 2
fi
mkdir -p "$out" && out="$(cd "$out" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
scale="${CAP_SCALE:-1}"
if [ "$mode" = cpu ]; then scale="${CAP_SCALE:-4}"; fi
budget="${CHECK_BUDGET:-$((470 * scale))}"
work="$(mktemp -d "${TMPDIR:-/tmp}/evoemotion-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
summary="$out/summary.md"
start=$SECONDS
exec > >(tee "$out/check.log") 2>&1

export PYTHONUNBUFFERED=1 MPLBACKEND=Agg MPLCONFIGDIR="$work/mpl"
export EVOEMOTION_CACHE="$work/cache"
if [ -d "$here/data/emotion6" ]; then export EVOEMOTION_DATA="$here/data"; fi
if [ "$mode" = cpu ]; then
  device=cpu
  export EVOEMOTION_CUDA_TESTS_ON_CPU=1
else
  device=cuda
fi

{
  echo "# evoemotion GPU check ($mode mode)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$summary"
echo "| step | status | seconds |" > "$work/steps.md"
echo "|---|---|---:|" >> "$work/steps.md"

# step NAME CAP COMMAND...: run COMMAND (or a function below, which sees the variables named
# in shared) under min(CAP, budget left) seconds; log its output, copy its markdown table
# lines into the summary and record its status and time.
shared=(python here root work out device evo pipeline score_px eval_size run_small render
        finetune datasets heads dqd_seconds dqd_small)
step() {
  local name="$1" cap=$(($2 * scale))
  shift 2
  local left=$((budget - (SECONDS - start)))
  if [ "$cap" -gt "$left" ]; then cap="$left"; fi
  if [ "$cap" -lt 10 ]; then
    echo "== $name: skipped, the ${budget} s budget is spent"
    echo "| $name | skipped (budget spent) | 0 |" >> "$work/steps.md"
    return 1
  fi
  echo
  echo "== $name (at most ${cap} s)"
  local t0=$SECONDS
  if declare -F "$1" >/dev/null; then  # a function of this script: run it in a bash child
    set -- bash -c "$(declare -f "$1"); $(declare -p "${shared[@]}"); $1"
  fi
  timeout --signal=INT --kill-after=20 "$cap" "$@" 2>&1 | tee "$work/$name.out"
  local rc=${PIPESTATUS[0]} status=ok
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status="timed out after ${cap} s"
  elif [ "$rc" -ne 0 ]; then status="failed (exit $rc)"; fi
  echo "| $name | $status | $((SECONDS - t0)) |" >> "$work/steps.md"
  { echo; echo "## $name: $status"; echo; grep -E '^\|' "$work/$name.out"; } >> "$summary"
  [ "$rc" -eq 0 ]
}

setup() {
  local site="$work/site"
  local version
  version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if compgen -G "$here/wheels/*.whl" >/dev/null && [ "$version" = 3.12 ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" "$here"/wheels/*.whl || return 1
    export PYTHONPATH="$root:$site"
    "$python" "$here/bundle.py" check-requirements "$here/wheels" || return 1
  elif [ "$mode" = gpu ]; then
    echo "no wheels for Python 3.12 in $here/wheels (run prepare.sh) or $python is $version"
    return 1
  else
    echo "Python $version: using its own packages (the wheels are for 3.12)"
    export PYTHONPATH="$root"
  fi
  "$python" - "$device" <<'EOF' || return 1
import sys
from importlib import metadata

import torch

import evoemotion

print(f"evoemotion from {evoemotion.__file__}")
names = ["torch", "torchvision", "numpy", "numba", "scipy", "ribs", "deap", "dask",
         "distributed", "pillow", "matplotlib", "efficientnet-lite-pytorch"]
print("| package | version |\n|---|---|")
print(f"| python | {sys.version.split()[0]} |")
for name in names:
    print(f"| {name} | {metadata.version(name)} |")
if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch")
    props = torch.cuda.get_device_properties(0)
    print(f"| GPU | {props.name}, {props.total_memory / 2**30:.0f} GiB, "
          f"{torch.cuda.device_count()} device(s), CUDA {torch.version.cuda} |")
print(f"| CPU threads (torch) | {torch.get_num_threads()} |")
EOF
  echo "data: ${EVOEMOTION_DATA:-../shared/data (default)}"
}

# The setup step exports PYTHONPATH, so it runs in this shell (its output still tees).
echo "== setup"
setup 2>&1 | tee "$work/setup.out"
setup_rc=${PIPESTATUS[0]}
site="$work/site"
if [ -d "$site" ]; then export PYTHONPATH="$root:$site"; else export PYTHONPATH="$root"; fi
{ echo; echo "## setup"; echo; grep -E '^\|' "$work/setup.out"; } >> "$summary"
if [ "$setup_rc" -ne 0 ]; then
  echo "| setup | failed | $SECONDS |" >> "$work/steps.md"
  { echo; cat "$work/steps.md"; } >> "$summary"
  echo "check.sh: setup failed; see $out/check.log" >&2
  exit 1
fi
echo "| setup | ok | $((SECONDS - start)) |" >> "$work/steps.md"
cd "$root" || exit 1
evo=("$python" -m evoemotion)

if [ "$mode" = gpu ]; then
  pipeline=(--device cuda --batch-size 2048 --chunk-size 512 --batches 4 --repeats 3)
  score_px=224
  eval_size=()
  run_small=()
  render=(--sizes 64,224 --count 2048 --repeats 3)
  finetune=(--finetune-epochs "${FINETUNE_EPOCHS:-5}" --bf16)
  datasets=(--dataset emotion6 --dataset oasis)
  heads=(--head categorical --head va --head dominance)
  dqd_seconds="${DQD_SECONDS:-40}"
  dqd_small=(--batch-size 256 --chunk-size 256 --score-size 224)
else
  pipeline=(--device cpu --batch-size 32 --chunk-size 16 --batches 1 --repeats 1
            --precision fp32)
  score_px=64
  eval_size=(--size 64)
  run_small=(--iterations 3 --batch-size 16 --cells 32)
  render=(--sizes 32 --count 64 --repeats 1)
  "$python" "$here/steps.py" subset-emotion6 "${EVOEMOTION_DATA:-$root/../shared/data}" 60 \
    "$work/emotion6-small.csv" || exit 1
  finetune=(--finetune-epochs 1 --size 64 --extra-sizes "" --epochs 20)
  datasets=(--dataset "csv:$work/emotion6-small.csv")
  heads=(--head categorical --head va)
  dqd_seconds="${DQD_SECONDS:-10}"
  dqd_small=(--batch-size 8 --chunk-size 8 --score-size 64)
fi

step cuda-tests 110 "$python" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py

pipeline_rates() {
  "$python" benchmarks/pipeline.py --classifier default --classifier resnet50 \
    --render-size 64 --score-size "$score_px" "${pipeline[@]}" || return 1
  "$python" benchmarks/pipeline.py --classifier default --render-size "$score_px" \
    --score-size "$score_px" "${pipeline[@]}"
}
step pipeline-224px 100 pipeline_rates

render_rates() {
  "$python" "$here/steps.py" render-rate --device "$device" "${render[@]}"
}
step render-rate 45 render_rates

default_run() {
  local t0=$SECONDS
  "${evo[@]}" run --genotype cppn --archive categorical --device "$device" \
    "${run_small[@]}" --out "$work/default-run" || return 1
  echo "whole command: $((SECONDS - t0)) s (start-up, centroids and elite export included)"
  "$python" "$here/steps.py" runs "default run ($device)=$work/default-run"
}
step default-run 90 default_run

finetune_default() {
  "${evo[@]}" evaluate default --device "$device" "${datasets[@]}" "${eval_size[@]}" \
    --json "$out/default-eval.json" || return 1
  # The bundled default's recipe (MODEL_CARD.md) plus whole-network fine-tuning, which
  # trains on random views (full, mirror, centre and corner crops) of the training images.
  "${evo[@]}" train --backbone efficientnet_lite0_ms "${heads[@]}" --hidden 128 \
    --dropout 0.5 --l2 0.03 --lr 2e-3 --patience 20 \
    --batch-size 512 --views full,flip --size 256 --extra-sizes 128 --refit --seed 0 \
    "${datasets[@]}" --device "$device" --finetune "${finetune[@]}" \
    --out "$work/finetuned.pt" || return 1
  "${evo[@]}" evaluate "$work/finetuned.pt" --device "$device" "${datasets[@]}" \
    "${eval_size[@]}" --json "$out/finetuned-eval.json" || return 1
  "$python" "$here/steps.py" metrics "bundled default=$out/default-eval.json" \
    "fine-tuned=$out/finetuned-eval.json"
}
# CMA-MEGA against iso-line MAP-Elites on the va archive (20 x 20, objective confidence, which
# DQD needs differentiable): each `evoemotion run` steps for dqd_seconds of wall-clock after
# its first iteration (start-up excluded), then SIGTERM makes it finish the iteration it is in
# and checkpoint (exit 130).
dqd_vs_map_elites() {
  local label pid rc metrics
  local -a algorithm
  for label in cma-mega iso-line; do
    if [ "$label" = cma-mega ]; then algorithm=(--algorithm dqd --dqd-emitter cma-mega)
    else algorithm=(--algorithm map-elites --emitter iso-line); fi
    metrics="$work/dqd-$label/metrics.csv"
    "${evo[@]}" run --genotype cppn --archive va --objective confidence "${algorithm[@]}" \
      --device "$device" "${dqd_small[@]}" --iterations 1000000 --checkpoint-every 0 \
      --no-export --out "$work/dqd-$label" &
    pid=$!
    until [ "$({ wc -l < "$metrics"; } 2>/dev/null || echo 0)" -ge 2 ]; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    sleep "$dqd_seconds"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    if [ "$rc" -ne 130 ]; then echo "$label run ended with exit $rc"; return 1; fi
  done
  echo "each run stepped ~${dqd_seconds} s after its first iteration (s stepping counts all)"
  "$python" "$here/steps.py" runs "CMA-MEGA (va, $device)=$work/dqd-cma-mega" \
    "iso-line MAP-Elites (va, $device)=$work/dqd-iso-line"
}
step dqd-vs-map-elites $((2 * dqd_seconds + 40)) dqd_vs_map_elites

step finetune-default 160 finetune_default

{ echo; echo "## steps"; echo; cat "$work/steps.md"; } >> "$summary"
echo
cat "$summary"
echo "total: $((SECONDS - start)) s; summary in $summary, log in $out/check.log"
! grep -q -E '\| (failed|timed out|skipped)' "$work/steps.md"
