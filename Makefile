# weft — the two commands a newcomer needs are `make run` and `make test`.

GO ?= go
PKGS := ./...

.PHONY: test vet fmt build bench run

## run: one node on the embedded default (HTTP on :3500, data in ./weft-data)
run:
	$(GO) run ./cmd/weft serve

## test: vet, then every test with the race detector
test: vet
	$(GO) test -race -count=1 -timeout 9m $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

build:
	$(GO) build $(PKGS)

## bench: the Go benchmarks of the executor and the runtime, then the side-by-side
## harness against durabletask-go and Restate (bench/, a module of its own):
## MODE=quick (default: scaled down, a few minutes, bench/report-quick.md) or
## MODE=full (the report: docs/BENCHMARKS.md, about half an hour). BENCH_FLAGS
## passes more flags, e.g. BENCH_FLAGS='-only chain,fanout -peers weft,restate'.
MODE ?= quick
BENCH_FLAGS ?=
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./workflow/ ./
	cd bench && $(GO) run ./cmd/bench -mode $(MODE) $(if $(filter full,$(MODE)),-out ../docs/BENCHMARKS.md) $(BENCH_FLAGS)
