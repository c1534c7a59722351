#!/usr/bin/env bash
# make bench: gpt2d's throughput on random-weight checkpoints of GPT-2
# small's shape (speed does not depend on the values), for each weight
# dtype, next to the memory and GEMM bounds measured in the same run.
#
#   scripts/bench.sh [DTYPES...]      default: f32 bf16 int8
#
# Environment: GPT2D (binary, default bin/gpt2d), MODELS_DIR (default
# models), BENCH_ARGS (extra `gpt2d bench` flags).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${GPT2D:-bin/gpt2d}
DIR=${MODELS_DIR:-models}
SRC=$DIR/random-124M
dtypes=("$@")
[ ${#dtypes[@]} -gt 0 ] || dtypes=(f32 bf16 int8)

if [ ! -f "$SRC/model.safetensors" ]; then
	echo "writing a random-weight 124M checkpoint to $SRC"
	"$BIN" random-checkpoint --config gpt2 --dtype f32 --seed 1 "$SRC"
fi
for dt in "${dtypes[@]}"; do
	f=$DIR/random-124M-$dt.gpt2d
	[ -f "$f" ] || "$BIN" weights convert --from "$SRC" --out "$f" --dtype "$dt"
	# shellcheck disable=SC2086
	"$BIN" bench --model "$f" --prompt-tokens 512 --new-tokens 128 --batch 1,8 --reps 5 ${BENCH_ARGS:-}
	# shellcheck disable=SC2086
	"$BIN" bench --model "$f" --prompt-tokens 16 --new-tokens 128 --batch 8 --reps 5 ${BENCH_ARGS:-}
done
