# taskhost: run `make help` for the targets.
GO ?= go
PKGS ?= ./...

BENCH_FLAGS ?=
# build: where the worker binary goes, and the version it reports.
BIN ?= bin/worker
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: help build test bench bench-go lint deps
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build the worker binary into ./bin/worker (BIN=path to change it)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X github.com/taskhost/taskhost/cmd.Version=$(VERSION)" -o $(BIN) ./cmd/worker

deps: ## install redis-server when it is missing (apt-get)
	@bash .ci/deps

test: deps ## install test deps if missing, then go test -race
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

bench: deps ## taskhost against bare asynq (cmd/bench, ~6 min; BENCH_FLAGS=-quick for a short run)
	$(GO) run ./cmd/bench $(BENCH_FLAGS)

bench-go: deps ## Go benchmarks (ratios against go-redis/asynq in the same run)
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
