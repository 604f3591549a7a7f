#!/usr/bin/env bash
# make test: every phase in turn, each announced with what it does, timed,
# and a heartbeat while a long one runs; a summary of the phases at the end.
# CI runs it through .ci/run. MAKE and GO come from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
GO=${GO:-go}
HEARTBEAT=${HEARTBEAT:-60}

start=$(date +%s)
summary=()
fmt() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# phase NAME DESCRIPTION COMMAND...: runs COMMAND, printing a line every
# HEARTBEAT seconds while it runs.
phase() {
	local name=$1 what=$2 t0 rc=0 hb
	shift 2
	t0=$(date +%s)
	echo "==> make test: $name: $what ($(date -u +%H:%M:%S) UTC, $(fmt $((t0 - start))) in)"
	( while sleep "$HEARTBEAT"; do echo "==> make test: $name still running ($(fmt $(($(date +%s) - t0))))"; done ) &
	hb=$!
	"$@" || rc=$?
	kill "$hb" 2>/dev/null || true
	wait "$hb" 2>/dev/null || true
	local took=$(($(date +%s) - t0))
	summary+=("$(printf '%-10s %8s' "$name" "$(fmt $took)")")
	if [ "$rc" -ne 0 ]; then
		echo "==> make test: $name FAILED after $(fmt $took) (exit $rc)"
		exit "$rc"
	fi
	echo "==> make test: $name done in $(fmt $took)"
}

phase deps "install what the tests need and is missing (PostgreSQL server binaries, the SNS/SQS emulator, podman, curl, Go modules)" \
	"$MAKE" --no-print-directory deps
phase vet "go vet ./..." "$GO" vet ./...
phase fuzz "build the instrumented tests, then every fuzz target from its seed corpus, ${FUZZ_BUDGET:-30}s of fuzzing in all" \
	"$MAKE" --no-print-directory fuzz-short
# -p 3: three test packages at once on a 2-core machine. Most integration
# tests wait on PostgreSQL, the emulator or a child process rather than
# compute, so a third package keeps both cores busy; with the default 2 the
# run took over 10 minutes. gotestsum (a tool of go.mod) prints a line per
# package as it finishes: go test alone prints them in the packages' order,
# so nothing showed until the slowest, first package ended; a failing test's
# output is printed when it fails and again at the end.
phase tests "go test ./...: unit and integration tests (throwaway PostgreSQL clusters, the emulator, the binaries); one line per package as it finishes" \
	"$GO" tool gotestsum --format pkgname-and-test-fails --format-icons text --format-hide-empty-pkg -- -count=1 -timeout 30m -p 3 ./...
phase demo "make demo-check: the local quickstart as a check" \
	"$MAKE" --no-print-directory demo-check

echo "==> make test: all passed in $(fmt $(($(date +%s) - start)))"
for s in "${summary[@]}"; do echo "    $s"; done
