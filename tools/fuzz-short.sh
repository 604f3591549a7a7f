#!/usr/bin/env bash
# make fuzz-short: every fuzz target, FUZZ_BUDGET seconds of fuzzing in all.
# The instrumented test binaries of the packages are built first, in
# parallel; then each target runs for an equal share of the
# budget that is left, stopped by SIGINT at its share whatever the load (the
# fuzzer then reports what it did and passes). A crasher fails the run; it
# is written under the package's testdata/fuzz/: commit it with the fix.
# Usage: fuzz-short.sh PKG:FuzzTarget... (from the Makefile's FUZZ_TARGETS).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
BUDGET=${FUZZ_BUDGET:-30}
root=$PWD
bin=$(mktemp -d "${TMPDIR:-/tmp}/baitoru-fuzz-XXXXXX")
trap 'rm -rf "$bin"' EXIT
cache=$("$GO" env GOCACHE)/fuzz # where go test -fuzz keeps what it found

pkgs=()
for t in "$@"; do
	p=${t%%:*}
	[[ " ${pkgs[*]} " == *" $p "* ]] || pkgs+=("$p")
done
t0=$(date +%s)
echo "fuzz: building the instrumented tests of ${#pkgs[@]} packages (${pkgs[*]})"
pids=()
for p in "${pkgs[@]}"; do
	"$GO" test -c -fuzz=. -o "$bin/$(basename "$p").test" "$p" &
	pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
echo "fuzz: built in $(($(date +%s) - t0))s; fuzzing ${#} targets for ${BUDGET}s in all"

start=$(date +%s)
n=$#
i=0
for t in "$@"; do
	i=$((i + 1))
	pkg=${t%%:*} name=${t#*:}
	left=$((BUDGET - ($(date +%s) - start)))
	share=$((left / (n - i + 1)))
	[ "$share" -ge 2 ] || share=2
	exe="$bin/$(basename "$pkg").test"
	importpath=$("$GO" list -f '{{.ImportPath}}' "$pkg")
	echo "fuzz [$i/$n]: $name ($pkg) for ${share}s"
	rc=0
	(cd "$root/$pkg" && timeout -s INT -k 10 "$share" "$exe" -test.run '^$' -test.fuzz "^$name\$" \
		-test.fuzztime "${share}s" -test.fuzzcachedir "$cache/$importpath") >"$bin/out" 2>&1 || rc=$?
	case $rc in
	0) cat "$bin/out" ;;
	124)
		# Stopped at its share. On a busy machine that can come before the
		# fuzzing began (the fuzzer still checking its seed inputs), which
		# the fuzzer reports as a FAIL although nothing failed.
		if grep -q 'terminated without fuzzing' "$bin/out"; then
			grep -v -e '^--- FAIL: ' -e '^FAIL$' -e 'terminated without fuzzing' "$bin/out" || true
			echo "fuzz: $name stopped at its ${share}s share before it began fuzzing (the machine is busy); not a failure: go test ./... runs its seed inputs"
		else
			cat "$bin/out"
		fi
		;;
	*)
		cat "$bin/out"
		echo "fuzz: $name ($pkg) FAILED (exit $rc): the failing input is under $pkg/testdata/fuzz/$name/"
		exit "$rc"
		;;
	esac
done
echo "fuzz: ${n} targets, $(($(date +%s) - start))s of fuzzing"
