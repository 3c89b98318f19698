#!/usr/bin/env bash
# Prepare the GPU check (run here, on a machine that reaches PyPI): download the wheels the
# GPU machine lacks, for Python 3.12 manylinux x86-64, into benchmarks/gpu/wheels/, and pack
# Emotion6 + OASIS re-encoded small into benchmarks/gpu/data/ (both git-ignored); print sizes.
#   benchmarks/gpu/prepare.sh            # DATA=path/to/data (default: $EVOEMOTION_DATA or ../shared/data)
#   SIDE=160 benchmarks/gpu/prepare.sh   # smaller images (default 192 px, JPEG quality 85)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
data="${DATA:-${EVOEMOTION_DATA:-$root/../shared/data}}"
limit_mib=60
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# pip matches manylinux_2_N exactly: offer every glibc up to the GPU machine's (Ubuntu 24.04).
platforms=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for n in $(seq 17 39); do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
download=("$python" -m pip download -q --only-binary=:all: --python-version 3.12
          --implementation cp "${platforms[@]}")

echo "== wheels for Python 3.12 (resolving dependencies)"
"${download[@]}" -d "$tmp/resolved" -r "$here/wheels.txt"
"${download[@]}" --no-deps -d "$tmp/resolved" -r "$here/wheels-nodeps.txt"
"$python" "$here/bundle.py" select-wheels "$tmp/resolved" "$here/wheels"

echo "== data from $data"
"$python" "$here/bundle.py" pack-data "$data" "$here/data" --side "${SIDE:-192}"

echo "== sizes"
du -sh "$here/wheels" "$here/data"/* "$here/data"
total_kib=$(du -sk "$here/wheels" "$here/data" | awk '{s += $1} END {print s}')
tree_kib=$(cd "$root" && git ls-files -z | du -ck --files0-from=- | tail -1 | cut -f1)
echo "packed: $((total_kib / 1024)) MiB (limit $limit_mib MiB); with the tracked files:" \
     "$(((total_kib + tree_kib) / 1024)) MiB of the 64 MiB that travel"
if [ "$total_kib" -gt $((limit_mib * 1024)) ] || [ $((total_kib + tree_kib)) -gt $((64 * 1024)) ]; then
  echo "prepare.sh: over $limit_mib MiB packed or 64 MiB in all: rerun with a smaller SIDE" >&2
  exit 1
fi
