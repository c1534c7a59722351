#!/usr/bin/env bash
# make bench: gpt2d's throughput on random-weight checkpoints of GPT-2
# small's shape (speed does not depend on the values), for each weight
# dtype, in one process with the memory, GEMM and instruction-peak bounds
# it measures, then the ratio table (and ratios to llama.cpp when given
# llama-bench's JSON results).
#
#   scripts/bench.sh [DTYPES...]      default: int8 bf16 f16 f32
#
# Environment: GPT2D (binary, default bin/gpt2d), MODELS_DIR (default
# models), BENCH_ARGS (extra `gpt2d bench` flags), LLAMA_BENCH (a file of
# `llama-bench -o jsonl` output for the same checkpoint, F32/BF16/F16/Q8_0).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${GPT2D:-bin/gpt2d}
DIR=${MODELS_DIR:-models}
SRC=$DIR/random-124M
dtypes=("$@")
[ ${#dtypes[@]} -gt 0 ] || dtypes=(int8 bf16 f16 f32) # smallest first: peak RSS is per process

if [ ! -f "$SRC/model.safetensors" ]; then
	echo "writing a random-weight 124M checkpoint to $SRC"
	"$BIN" random-checkpoint --config gpt2 --dtype f32 --seed 1 "$SRC"
fi
models=()
for dt in "${dtypes[@]}"; do
	f=$DIR/random-124M-$dt.gpt2d
	[ -f "$f" ] || "$BIN" weights convert --from "$SRC" --out "$f" --dtype "$dt"
	models+=("$f")
done
list=$(IFS=,; echo "${models[*]}")
llama=()
[ -z "${LLAMA_BENCH:-}" ] || llama=(--llama-bench "$LLAMA_BENCH")
# shellcheck disable=SC2086
"$BIN" bench --model "$list" --prompt-tokens 128,512 --new-tokens 128 --batch 1,8 --reps 5 "${llama[@]}" ${BENCH_ARGS:-}
# shellcheck disable=SC2086
"$BIN" bench --model "$list" --prompt-tokens 16 --new-tokens 128 --batch 8 --reps 5 ${BENCH_ARGS:-}
