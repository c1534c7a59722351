#!/usr/bin/env bash
# setup-weights.sh [MODEL] — make models/MODEL.gpt2d, the weights file
# `gpt2d serve --model` memory-maps: build gpt2d if needed, fetch MODEL from
# the Hugging Face Hub into models/MODEL/ and convert it. No Python needed.
#
# MODEL is gpt2 (default), distilgpt2, gpt2-medium, gpt2-large, gpt2-xl, or
# a Hub repository owner/name. Idempotent: with the file in place it does
# nothing and says so; an interrupted download resumes on the next run.
#
# Environment:
#   DTYPE        matrix element type: f32 (default), bf16, f16 or int8
#   MODELS_DIR   where models live (default models, git-ignored)
#   HF_ENDPOINT  Hub to fetch from (default https://huggingface.co)
#   HF_TOKEN     Hub access token, for gated or private repositories
#   GPT2D        gpt2d binary to use (default bin/gpt2d, built if stale)
set -euo pipefail
cd "$(dirname "$0")/.."

model=${1:-gpt2}
models_dir=${MODELS_DIR:-models}
dtype=${DTYPE:-f32}
bin=${GPT2D:-bin/gpt2d}
out="$models_dir/$model.gpt2d"
dir="$models_dir/$model"

if [ -f "$out" ]; then
	echo "setup-weights: $out is already there; nothing to do (delete it to fetch and convert again)"
	exit 0
fi

# Build when the binary is missing or older than any source file, unless
# the caller named a binary.
if [ -z "${GPT2D:-}" ]; then
	stale=$(find . \( -path ./.git -o -path "./$models_dir" \) -prune -o \
		\( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$bin" -print -quit 2>/dev/null || true)
	if [ ! -x "$bin" ] || [ -n "$stale" ]; then
		echo "setup-weights: building $bin"
		mkdir -p "$(dirname "$bin")"
		CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$bin" ./cmd/gpt2d
	fi
fi

"$bin" weights fetch --model "$model" --dir "$dir"
"$bin" weights convert --from "$dir" --out "$out" --dtype "$dtype"
echo "setup-weights: $out is ready; serve it with: $bin serve --model $out"
