# gpt2d — build, test, run and benchmark. Everything is pure Go: CGO stays off.
export CGO_ENABLED := 0

MODEL      ?= gpt2
MODELS_DIR ?= models
MODEL_FILE ?= $(MODELS_DIR)/$(MODEL).gpt2d
ADDR       ?= 127.0.0.1:8000
DATA       ?= data/gpt2d.db
BIN        := bin/gpt2d

.PHONY: build test unit race run weights bench lint clean
STATICCHECK_VERSION ?= v0.8.2

build:
	go build -trimpath -ldflags '-s -w' -o $(BIN) ./cmd/gpt2d

# Everything CI checks: formatting, vet, staticcheck, the tests, and the
# tests again under the race detector when a C compiler is present.
test: lint unit race

unit:
	go test -count=1 -timeout 30m ./...

# The race detector needs cgo; it is a test tool only, the binary stays static.
race:
	@if command -v gcc >/dev/null; then \
		CGO_ENABLED=1 go test -race -count=1 -timeout 40m ./...; \
	else echo "race: skipped, no C compiler (apt-get install gcc)"; fi

# Fetch MODEL from the Hugging Face Hub and convert it to $(MODEL_FILE);
# DTYPE=bf16|f16|int8 narrows the matrices (default f32).
weights: build
	MODELS_DIR='$(MODELS_DIR)' GPT2D='$(BIN)' bash scripts/setup-weights.sh $(MODEL)

# Serve MODEL on ADDR. The port is checked first, so a busy port fails in
# a second rather than after a build and a download; a missing
# $(MODEL_FILE) is fetched and converted by the server on first use
# (/health answers 503 meanwhile).
run:
	@bash scripts/check-port.sh '$(ADDR)'
	@$(MAKE) --no-print-directory build
	$(BIN) serve --model $(if $(wildcard $(MODEL_FILE)),$(MODEL_FILE),$(MODEL)) --models-dir $(MODELS_DIR) --addr $(ADDR) --data $(DATA)

# Go micro-benchmarks of the kernels and the forward pass, then `gpt2d
# bench` on random 124M checkpoints (f32, bf16, int8) with bounds.
bench: build
	go test -run '^$$' -bench 'Linear|Prefill|Decode' -benchtime 3x ./gpt2/
	MODELS_DIR='$(MODELS_DIR)' GPT2D='$(BIN)' bash scripts/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean:
	rm -rf bin
