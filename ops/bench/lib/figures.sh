# shellcheck shell=bash
# BENCH_JSON=path for ops/bench/*: every figure a script prints in its table also goes, with
# the settings it ran at, into one JSON file (the format: ops/bench/lib/figures.py).
#
# Source it before the script's `cd` (a relative BENCH_JSON is the caller's), then:
#   figures_begin NAME KEY=VALUE...      the bench's name and the settings it runs at
#   figure NAME VALUE UNIT KIND [BETTER] one figure; KIND throughput|latency|ratio|memory|time,
#                                        BETTER higher|lower (default: by kind; ratio higher)
#   figures_end STATUS                   writes BENCH_JSON (in the EXIT trap, so that a failed
#                                        run still writes the figures it has, "complete": false)
# Without BENCH_JSON each is a no-op. Figures gather as tab-separated lines in the file
# BENCH_FIGURES, exported so that the Rust bench binaries append theirs to it too.

if [ -n "${BENCH_JSON:-}" ]; then BENCH_JSON=$(realpath -m "$BENCH_JSON"); fi
FIGURES_PY=$(realpath "$(dirname "${BASH_SOURCE[0]}")/figures.py")
unset BENCH_FIGURES

figures_begin() {
  [ -n "${BENCH_JSON:-}" ] || return 0
  FIGURES_BENCH=$1; shift
  FIGURES_SETTINGS=("$@")
  BENCH_FIGURES=$(mktemp "${TMPDIR:-/tmp}/cortex-figures.XXXXXX")
  export BENCH_FIGURES
}

figure() {
  [ -n "${BENCH_FIGURES:-}" ] || return 0
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$BENCH_FIGURES"
}

figures_end() {
  [ -n "${BENCH_FIGURES:-}" ] || return 0
  python3 "$FIGURES_PY" write --bench "$FIGURES_BENCH" --figures "$BENCH_FIGURES" --status "$1" \
    --out "$BENCH_JSON" -- "${FIGURES_SETTINGS[@]}" || true
  rm -f "$BENCH_FIGURES"
  unset BENCH_FIGURES
}
