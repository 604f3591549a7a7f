#!/usr/bin/env bash
# phase.sh TARGET WHAT COMMAND...: runs COMMAND as one step of a make target
# that takes a while (make image): says what it does when it starts, prints
# a line every HEARTBEAT seconds (default 30) while it runs, and how long it
# took when it ends. The exit status is COMMAND's.
set -uo pipefail
target=$1 what=$2
shift 2
HEARTBEAT=${HEARTBEAT:-30}
t0=$(date +%s)
echo "==> $target: $what"
( while sleep "$HEARTBEAT"; do echo "==> $target: still running ($(($(date +%s) - t0))s): $what"; done ) &
hb=$!
rc=0
"$@" || rc=$?
kill "$hb" 2>/dev/null
wait "$hb" 2>/dev/null
if [ "$rc" -ne 0 ]; then
	echo "==> $target: FAILED after $(($(date +%s) - t0))s (exit $rc): $what"
	exit "$rc"
fi
echo "==> $target: done in $(($(date +%s) - t0))s"
