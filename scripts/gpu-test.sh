#!/usr/bin/env bash
# Runs the GPU test binaries (built here by `make cuda-test-bin`, carried by `make gpu-bundle`) on a GPU
# machine: sets up the libraries (scripts/gpu-env.sh), records nvidia-smi, then runs every
# bin/gpu-tests/*.test with RESNET_REQUIRE_GPU=1, so a test that finds no GPU fails instead of skipping.
#
#   scripts/gpu-test.sh                      # tests
#   scripts/gpu-test.sh --bench              # tests, then the benchmarks (-test.bench . -test.run '^$')
#   scripts/gpu-test.sh -- -test.run Conv    # extra flags for every test binary
#   scripts/gpu-test.sh --ddp                # a machine with 2 GPUs or more: data-parallel training (below)
#
# Logs (one per binary, plus nvidia-smi.txt and summary.txt) go to $OUT, or ./gpu-test-logs. Each binary
# runs in its package directory when that exists (internal-cuda.test in internal/cuda), as `go test` would.
# Exits non-zero if any binary fails, or if there is none to run.
#
# --ddp runs, instead of every test: the NCCL tests of internal-cuda.test (one rank, and two ranks in two
# processes on GPUs 0 and 1); then demo.yaml, shortened to a few steps on a global batch of 16 per GPU
# without augmentation, trained with `resnet train --nproc-per-node N` on all N GPUs, and on one GPU with
# train.accumulate_steps = N, the same global batch in N micro-batches; then scripts/ddp_compare.py, which
# checks that both runs took the same steps to the same weights and training loss (logs and runs in
# $OUT/ddp, the comparison in ddp/compare.json).
#
# Environment: RESNET_GPU_TEST_TIMEOUT (per binary, default 8m; a hang then dumps its goroutines);
# RESNET_DDP_TIMEOUT (each --ddp training run, default 5m); RESNET_DDP_STEPS (default 8).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bench=0
ddp=0
extra=()
while (($# > 0)); do
	case "$1" in
	--bench) bench=1 ;;
	--ddp) ddp=1 ;;
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

# ddp_check: the --ddp sequence (see the top); records each part in the summary, sets failed.
ddp_check() {
	local gpus bin=$root/bin/gpu-tests/internal-cuda.test dir=$logs/ddp python=${RESNET_TORCH_PYTHON:-python3}
	local steps=${RESNET_DDP_STEPS:-8} box=${RESNET_DDP_TIMEOUT:-5m} batch status start rc
	mkdir -p "$dir"
	gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
	if ((gpus < 2)); then
		echo "FAIL ddp: this machine has ${gpus:-0} GPU(s); --ddp needs 2 or more" | tee -a "$summary"
		failed=1
		return
	fi

	start=$SECONDS
	echo "== ddp: NCCL tests on $gpus GPUs"
	if [[ ! -x $bin ]]; then
		status="FAIL (no $bin)"
		failed=1
	elif run "$bin" "$dir/nccl-tests.log" -test.v -test.count 1 -test.run 'Collectives|NCCL' "${extra[@]}"; then
		status=PASS
	else
		status=FAIL
		failed=1
		tail -n 40 "$dir/nccl-tests.log"
	fi
	local counts
	counts=$(grep -cE '^--- PASS' "$dir/nccl-tests.log" || true)/$(grep -cE '^--- FAIL' "$dir/nccl-tests.log" || true)/$(grep -cE '^--- SKIP' "$dir/nccl-tests.log" || true)
	echo "$status ddp NCCL tests (pass/fail/skip $counts, $((SECONDS - start)) s)" | tee -a "$summary"

	# The same global batch either way: 16 images per GPU, in N ranks' slices or N micro-batches.
	batch=$((16 * gpus))
	local sets=(--epochs 1 --set "train.batch_size=$batch" --set "dataset.train_size=$((batch * steps))"
		--set dataset.test_size=256 --set dataset.augment=false --set train.schedule.warmup_epochs=0)
	local name
	for name in ddp single; do
		local args=(train --config demo.yaml --out "$dir/$name" --device cuda "${sets[@]}")
		if [[ $name == ddp ]]; then
			args+=(--nproc-per-node "$gpus")
		else
			args+=(--set "train.accumulate_steps=$gpus")
		fi
		start=$SECONDS
		echo "== ddp: bin/resnet ${args[*]}"
		rm -rf "${dir:?}/$name"
		rc=0
		timeout -k 10 "$box" "$root/bin/resnet" "${args[@]}" >"$dir/$name.log" 2>&1 || rc=$?
		if ((rc == 0)); then
			status=PASS
		else
			status="FAIL (exit $rc$( ((rc == 124 || rc == 137)) && echo ", out of time ($box)"))"
			failed=1
			tail -n 20 "$dir/$name.log"
		fi
		echo "$status ddp train $name ($( [[ $name == ddp ]] && echo "$gpus GPUs" || echo "1 GPU, $gpus micro-batches"), $((SECONDS - start)) s)" | tee -a "$summary"
	done

	echo "== ddp: scripts/ddp_compare.py"
	rc=0
	"$python" "$root/scripts/ddp_compare.py" "$dir/ddp" "$dir/single" --json "$dir/compare.json" >"$dir/compare.txt" 2>&1 || rc=$?
	cat "$dir/compare.txt"
	if ((rc == 0)); then
		status=PASS
	else
		status=FAIL
		failed=1
	fi
	echo "$status ddp vs accumulate_steps=$gpus: $(grep -m1 'weights and momentum' "$dir/compare.txt" | sed 's/^[A-Z]* //' || true)" | tee -a "$summary"
}

if [[ $ddp == 1 ]]; then
	ddp_check
	echo "== summary (logs in $logs)"
	cat "$summary"
	exit "$failed"
fi

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
