# weft — the two commands a newcomer needs are `make run` and `make test`.

GO ?= go
PKGS := ./...

.PHONY: test vet fmt build bench run proto browser

## run: one node on the embedded default (HTTP on :3500, gRPC on :50001, data in ./weft-data),
## hosting the seed document's sample workflows so its curl commands work as they are
run:
	$(GO) run ./cmd/weft serve --samples

## test: vet, then every test with the race detector (the bench harness's too, whose
## workers must build, so that `make bench` keeps working); then
## test/sdk, a module of its own that runs Dapr's Go SDK, durabletask-go's client and a
## JavaScript worker (@dapr/durabletask-js, installed with npm on first use) against
## `weft serve`
test: vet browser
	$(GO) test -race -count=1 -timeout 14m $(PKGS)
	$(GO) test -count=1 -timeout 5m -run '^TestCluster' . ./cluster
	cd bench && $(GO) build ./... && $(GO) test -race -count=1 ./internal/harness/ ./cmd/sdkfloor/
	cd test/sdk && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...
	@$(CHROMIUM_CHECK) || echo "make test: the web UI's tests (test/ui) were SKIPPED: no chromium. Install it (apt-get install -y chromium, or WEFT_CHROMIUM=/path/to/chrome) and run make test again."

## browser: the web UI's tests (test/ui) drive headless Chromium; install Debian's
## package when it is missing and this user can, else say plainly they will skip
CHROMIUM_CHECK = { [ -n "$$WEFT_CHROMIUM" ] || command -v chromium || command -v chromium-browser || [ -x /usr/bin/chromium ]; } >/dev/null 2>&1
browser:
	@$(CHROMIUM_CHECK) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  echo "make test: installing chromium for the web UI's tests (test/ui)" && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "make test: chromium is not installed and cannot be installed by this user: the web UI's tests (test/ui) will be SKIPPED (apt-get install -y chromium, then make test again)"

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

build:
	$(GO) build $(PKGS)

# The durabletask .proto files are Dapr's as fetched (api/durabletask/protos/README.md):
# their go_package is mapped here rather than edited.
DT_PKG := github.com/weftrt/weft/api/durabletask/protos
DT_MAP := $(foreach f,attestation orchestration history_events orchestrator_actions orchestrator_service,M$(f).proto=$(DT_PKG))

## proto: regenerate api/durabletask/protos and cluster/wire (needs protoc, protoc-gen-go and
## protoc-gen-go-grpc on PATH; the generated code is committed)
proto:
	cd api/durabletask/protos && protoc $(DT_MAP:%=--go_opt=%) $(DT_MAP:%=--go-grpc_opt=%) \
		--go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative \
		attestation.proto orchestration.proto history_events.proto orchestrator_actions.proto orchestrator_service.proto legacy.proto
	cd cluster/wire && protoc --go_out=. --go_opt=paths=source_relative envelope.proto

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
