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
# models), SIZES (model shapes, default 124M; also medium, large, xl:
# gpt2-medium's ... shapes, in files MODELS_DIR/random-SIZE-DTYPE.gpt2d),
# BENCH_ARGS (extra `gpt2d bench` flags), LLAMA_BENCH (a file of
# `llama-bench -o jsonl` output for the same checkpoints, F32/BF16/F16/Q8_0,
# any sizes: each gpt2d model is set against its own size's rows).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${GPT2D:-bin/gpt2d}
DIR=${MODELS_DIR:-models}
dtypes=("$@")
[ ${#dtypes[@]} -gt 0 ] || dtypes=(int8 bf16 f16 f32)

models=()
for size in ${SIZES:-124M}; do
	case $size in
	124M) shape=gpt2 ;;
	medium | large | xl) shape=gpt2-$size ;;
	*) echo "bench.sh: SIZES: $size is not 124M, medium, large or xl" >&2; exit 2 ;;
	esac
	src=$DIR/random-$size
	if [ ! -f "$src/model.safetensors" ]; then
		echo "writing a random-weight $size checkpoint to $src"
		"$BIN" random-checkpoint --config "$shape" --dtype f32 --seed 1 "$src"
	fi
	for dt in "${dtypes[@]}"; do
		f=$DIR/random-$size-$dt.gpt2d
		[ -f "$f" ] || "$BIN" weights convert --from "$src" --out "$f" --dtype "$dt"
		models+=("$f")
	done
done
list=$(IFS=,; echo "${models[*]}")
llama=()
[ -z "${LLAMA_BENCH:-}" ] || llama=(--llama-bench "$LLAMA_BENCH")
# shellcheck disable=SC2086
"$BIN" bench --model "$list" --prompt-tokens 128,512 --new-tokens 128 --batch 1,8 --reps 5 "${llama[@]}" ${BENCH_ARGS:-}
# shellcheck disable=SC2086
"$BIN" bench --model "$list" --prompt-tokens 16 --new-tokens 128 --batch 8 --reps 5 ${BENCH_ARGS:-}
