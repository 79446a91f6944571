#!/usr/bin/env bash
# Runs the GPU test binaries (built here by `make cuda-test-bin`, carried by `make gpu-bundle`) on a GPU
# machine: sets up the libraries (scripts/gpu-env.sh), records nvidia-smi, then runs every
# bin/gpu-tests/*.test with RESNET_REQUIRE_GPU=1, so a test that finds no GPU fails instead of skipping.
#
#   scripts/gpu-test.sh                      # tests
#   scripts/gpu-test.sh --bench              # tests, then the benchmarks (-test.bench . -test.run '^$')
#   scripts/gpu-test.sh -- -test.run Conv    # extra flags for every test binary
#
# Logs (one per binary, plus nvidia-smi.txt and summary.txt) go to $OUT, or ./gpu-test-logs. Each binary
# runs in its package directory when that exists (internal-cuda.test in internal/cuda), as `go test` would.
# Exits non-zero if any binary fails, or if there is none to run.
#
# Environment: RESNET_GPU_TEST_TIMEOUT (per binary, default 8m; a hang then dumps its goroutines).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bench=0
extra=()
while (($# > 0)); do
	case "$1" in
	--bench) bench=1 ;;
	--)
		shift
		extra=("$@")
		break
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "gpu-test.sh: unknown argument '$1' (try --help)" >&2
		exit 2
		;;
	esac
	shift
done

logs=${OUT:-$PWD/gpu-test-logs}
mkdir -p "$logs"
logs=$(cd "$logs" && pwd)
timeout=${RESNET_GPU_TEST_TIMEOUT:-8m}

# gpu-check.sh has already searched the libraries and asked nvidia-smi (RESNET_GPU_ENV_DONE=1), and exported
# what it found, complete or not: searching again would only fail again, before any test has run.
if [[ ${RESNET_GPU_ENV_DONE:-} != 1 ]]; then
	# shellcheck source=scripts/gpu-env.sh
	. "$root/scripts/gpu-env.sh" || {
		echo "gpu-test: the CUDA libraries are not all there (see above)" >&2
		exit 1
	}

	echo "== nvidia-smi"
	if ! nvidia-smi 2>&1 | tee "$logs/nvidia-smi.txt"; then
		echo "gpu-test: nvidia-smi failed: no usable GPU here" >&2
		exit 1
	fi
fi

shopt -s nullglob
bins=("$root"/bin/gpu-tests/*.test)
shopt -u nullglob
if ((${#bins[@]} == 0)); then
	echo "gpu-test: no test binaries in $root/bin/gpu-tests (build them with make cuda-test-bin or make gpu-bundle)" >&2
	exit 1
fi

# run NAME LOG ARGS...: runs one binary in its package directory, logging everything; returns its status.
run() {
	local bin=$1 log=$2 name dir rc=0
	shift 2
	name=$(basename "$bin" .test)
	dir=$root/${name//-//}
	[[ -d $dir ]] || dir=$root
	(cd "$dir" && RESNET_REQUIRE_GPU=1 "$bin" -test.timeout "$timeout" "$@") >"$log" 2>&1 || rc=$?
	return "$rc"
}

summary=$logs/summary.txt
: >"$summary"
failed=0
for bin in "${bins[@]}"; do
	name=$(basename "$bin" .test)
	start=$SECONDS
	echo "== $name: tests"
	if run "$bin" "$logs/$name.log" -test.v -test.count 1 "${extra[@]}"; then
		status=PASS
	else
		status=FAIL
		failed=1
		tail -n 40 "$logs/$name.log"
	fi
	# Counts of top-level results, so the summary shows a run that skipped everything.
	counts=$(grep -cE '^--- PASS' "$logs/$name.log" || true)/$(grep -cE '^--- FAIL' "$logs/$name.log" || true)/$(grep -cE '^--- SKIP' "$logs/$name.log" || true)
	echo "$status $name tests (pass/fail/skip $counts, $((SECONDS - start)) s)" | tee -a "$summary"

	if [[ $bench == 1 ]]; then
		start=$SECONDS
		echo "== $name: benchmarks"
		if run "$bin" "$logs/$name.bench.log" -test.run '^$' -test.bench . -test.benchmem "${extra[@]}"; then
			status=PASS
			grep -E '^Benchmark' "$logs/$name.bench.log" || true
		else
			status=FAIL
			failed=1
			tail -n 40 "$logs/$name.bench.log"
		fi
		echo "$status $name benchmarks ($((SECONDS - start)) s)" | tee -a "$summary"
	fi
done

echo "== summary (logs in $logs)"
cat "$summary"
exit "$failed"
