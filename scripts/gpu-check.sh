#!/usr/bin/env bash
# The one prepared check for a GPU machine, run from the unpacked GPU bundle (`make gpu-bundle` builds it):
#
#   tar xzf resnet-gpu.tar.gz && scripts/gpu-check.sh "$OUT"
#   scripts/gpu-check.sh --dry-run DIR     # the plumbing only, where there is no GPU (also GPU_CHECK_DRY=1)
#
# Every stage is time-boxed (timeout), and the boxes add up to 7 minutes 50 seconds, so a hang in one stage
# cannot take the others' time (not yet run on a GPU: the boxes are estimates). The stages, most
# informative first:
#   1. env    20 s   nvidia-smi, the driver and the libraries scripts/gpu-env.sh picks, `resnet version`
#   2. tests  140 s  every bin/gpu-tests/*.test with RESNET_REQUIRE_GPU=1 (scripts/gpu-test.sh); the result
#                    of TestCollectivesOneRank (NCCL, a group of one rank) is recorded on its own
#   3. bench  210 s  `resnet bench` against scripts/bench_pytorch.py on this GPU, resnet50 at batch 256 and
#                    cifar_resnet56 at 128: both in fp32, PyTorch also in bf16 autocast with channels_last;
#                    then resnet50 in bf16 (ours --precision bf16, PyTorch autocast) and bf16 NHWC (ours
#                    --layout nhwc, PyTorch channels_last), ours bf16 NHWC again with --graphs (the step
#                    replayed as a CUDA graph); then, time allowing, TF32; each run boxed
#   4. demo   100 s  demo.yaml trained on the GPU and on the CPU at the same time, same seed, test errors
#                    compared; then on the GPU with cuda.precision: bf16, its test error reported beside them
# The bf16 runs took 10 s from the bench box's old 200 s and the bf16 demo 10 s from the demo's old 90 s.
# Why this order: nothing works without the libraries, so env goes first and is cheap. The tests answer
# what nothing else can (is each CUDA op right?) and explain any failure after them. The benchmark comes
# before the demo because the PyTorch numbers are worth having even when ours fail, and docs/benchmarks.md
# needs them; the demo repeats end to end what TestTrainingCurvesTrack checks, so it is the stage whose
# loss costs least. A stage that needs the GPU fails at once when nvidia-smi finds none (a dry run skips it).
#
# Output in DIR (default $OUT, else ./gpu-check): summary.json and summary.md, rewritten after every stage
# and every benchmark run, so that a machine that goes away leaves all that finished; summary.md is written
# to be pasted into docs/benchmarks.md. Each stage's own files: env.json, env.txt, nvidia-smi.txt,
# stages/*.json, tests/ (one log per test binary), bench/ (each run's JSON and log), demo/ (both runs).
# Exit status: 0 when every stage passed (a dry run: when its files were written), else 1.
#
# Environment: GPU_CHECK_DRY=1 (as --dry-run); GPU_CHECK_DEMO_EPOCHS (default: demo.yaml's 4 epochs).
set -uo pipefail # no -e: a stage that fails must not stop the ones after it

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/json.sh
. "$root/scripts/json.sh"

dry=${GPU_CHECK_DRY:-0}
out=
while (($# > 0)); do
	case $1 in
	--dry-run) dry=1 ;;
	-h | --help)
		sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "gpu-check.sh: unknown option '$1' (try --help)" >&2
		exit 2
		;;
	*) out=$1 ;;
	esac
	shift
done
[[ $dry == 1 ]] || dry=0
out=${out:-${OUT:-$PWD/gpu-check}}
mkdir -p "$out/stages" || exit 1
out=$(cd "$out" && pwd)
resnet=$root/bin/resnet
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# The demo's test errors on the GPU and the CPU must agree to 10 points of top-1 error. Measured on the CPU
# (4 epochs, seed 1: 29.7%): changing train.lr by 1 ulp, 2e-7, 2e-6 and 2e-5 relative, as a stand-in for
# the GPU's different rounding, gave 30.8%, 28.6%, 33.0% and 37.9%; other seeds gave 15.4% to 32.8%.
readonly DEMO_TOLERANCE=0.10

# ---- Facts the stages find, and the summary ------------------------------------------------------------
gpu_name='' gpu_driver='' gpu_mem_mib='' gpu_cc='' driver_cuda='' no_gpu='' resnet_version=''
torch_python='' torch_version='' libs_note=''
stage_names=() # in order, as stages/<n>-<name>.json
stage_rows=()  # the stage table's rows of summary.md
bench_md=''    # summary.md sections of the bench and demo stages
demo_md=''

say() { echo "gpu-check: $*"; }

write_summary() {
	local f sep=''
	{
		echo "{"
		echo "  \"check\": \"scripts/gpu-check.sh\","
		echo "  \"started\": $(json_str "$started"),"
		echo "  \"dry_run\": $([[ $dry == 1 ]] && echo true || echo false),"
		echo "  \"resnet\": $(json_str "$resnet_version"),"
		echo "  \"gpu\": {\"name\": $(json_str "$gpu_name"), \"driver\": $(json_str "$gpu_driver"), \"driver_cuda\": $(json_str "$driver_cuda"), \"memory_mib\": $(json_num "$gpu_mem_mib"), \"compute_capability\": $(json_str "$gpu_cc")},"
		echo "  \"torch\": {\"python\": $(json_str "$torch_python"), \"version\": $(json_str "$torch_version")},"
		echo "  \"elapsed_s\": $SECONDS,"
		printf '  "stages": ['
		for f in ${stage_names[@]+"${stage_names[@]}"}; do
			printf '%s\n    ' "$sep"
			tr '\n' ' ' <"$out/stages/$f.json"
			sep=,
		done
		printf '\n  ]\n}\n'
	} >"$out/summary.json.tmp" && mv "$out/summary.json.tmp" "$out/summary.json"
	{
		echo "## GPU check, ${started%%T*}"
		echo
		if [[ -n $gpu_name ]]; then
			echo "$gpu_name (compute capability ${gpu_cc:-?}, ${gpu_mem_mib:-?} MiB), driver ${gpu_driver:-?} (CUDA ${driver_cuda:-?})."
		else
			echo "No GPU: ${no_gpu:-not looked for yet}."
		fi
		[[ -z $libs_note ]] || echo "$libs_note"
		echo "$resnet_version${torch_version:+; PyTorch $torch_version}. Built with \`make gpu-bundle\`, run with"
		echo "\`tar xzf resnet-gpu.tar.gz && scripts/gpu-check.sh \"\$OUT\"\`$([[ $dry == 1 ]] && echo ' (dry run)')."
		echo
		echo "| stage | result | time (box) |"
		echo "|---|---|---|"
		for f in ${stage_rows[@]+"${stage_rows[@]}"}; do echo "$f"; done
		[[ -z $bench_md ]] || printf '\n%s' "$bench_md"
		[[ -z $demo_md ]] || printf '\n%s' "$demo_md"
	} >"$out/summary.md.tmp" && mv "$out/summary.md.tmp" "$out/summary.md"
}

# ---- Stages ----------------------------------------------------------------------------------------------
stage_n=0
stage_name=''
stage_box=0
stage_t0=0

stage_begin() { # NAME BOX
	stage_n=$((stage_n + 1))
	stage_name=$1
	stage_box=$2
	stage_t0=$SECONDS
	echo
	echo "== [$stage_n/4 $stage_name] box $stage_box s, $SECONDS s so far"
}

stage_left() { echo $((stage_box - (SECONDS - stage_t0))); }

# stage_write STATUS NOTE [JSON_FIELDS]: (re)writes this stage's record and the summary. JSON_FIELDS are
# more "key": value pairs, comma-separated.
stage_write() {
	local status=$1 note=$2 fields=${3:-} secs=$((SECONDS - stage_t0)) id="$stage_n-$stage_name"
	printf '{"stage": %s, "status": %s, "seconds": %d, "box_s": %d, "note": %s%s}\n' "$(json_str "$stage_name")" \
		"$(json_str "$status")" "$secs" "$stage_box" "$(json_str "$note")" "${fields:+, $fields}" >"$out/stages/$id.json"
	((${#stage_names[@]} >= stage_n)) || stage_names+=("$id")
	stage_rows[stage_n - 1]="| $stage_name | $status${note:+: $note} | $secs s ($stage_box s) |"
	write_summary
	[[ $status == running ]] || say "$stage_name: $status${note:+: $note} ($secs s)"
}

# gpu_gate: returns 1, recording the stage as skipped (dry run) or failed (no GPU), when it cannot run.
gpu_gate() {
	if [[ $dry == 1 ]]; then
		stage_write skipped "dry run: no GPU work"
		return 1
	fi
	if [[ -n $no_gpu ]]; then
		stage_write fail "no GPU: $no_gpu"
		return 1
	fi
	return 0
}

# boxed SECS LOG CMD...: runs CMD with a time limit (its whole process group), stdout and stderr to LOG;
# returns its status (124 or 137: out of time).
boxed() {
	local secs=$1 log=$2
	shift 2
	timeout -k 5 "$secs" "$@" >"$log" 2>&1
}

# status_of RC: pass, timeout or fail.
status_of() {
	case $1 in
	0) echo pass ;;
	124 | 137) echo timeout ;;
	*) echo fail ;;
	esac
}

# last_line FILE: FILE's last line that is not empty, for a failure's reason.
# num X SCALE FORMAT prints X*SCALE with the printf FORMAT, or "-" when X is empty or null (a JSON null: a
# loss that was not finite).
num() { awk -v x="$1" -v k="$2" -v f="$3" 'BEGIN { if (x == "" || x == "null") print "-"; else printf f, k * x }'; }

last_line() { sed '/^[[:space:]]*$/d' "$1" 2>/dev/null | tail -n 1 | cut -c 1-300; }

# env_lib KEY FIELD: a field of a library in env.json (gpu-env.sh writes one library per line).
env_lib() { sed -n "s/^ *\"$1\": {.*\"$2\": \"\([^\"]*\)\".*/\1/p" "$out/env.json" 2>/dev/null | head -n 1; }

# lib_desc KEY LABEL: "cuDNN 9.13.0.50 (nvidia-cudnn-cu13)", or "cuDNN not found".
lib_desc() {
	local version package
	version=$(env_lib "$1" version)
	package=$(env_lib "$1" package)
	if [[ -z $(env_lib "$1" path) ]]; then
		echo "$2 not found"
	else
		echo "$2 ${version:-?}${package:+ ($package)}"
	fi
}

# ---- 1. env ----------------------------------------------------------------------------------------------
stage_env() {
	stage_begin env 20
	local problems=() rc f exports
	if ! command -v nvidia-smi >/dev/null 2>&1; then
		no_gpu="nvidia-smi is not installed"
	elif ! timeout 10 nvidia-smi >"$out/nvidia-smi.txt" 2>&1; then
		no_gpu="nvidia-smi failed: $(tail -n 1 "$out/nvidia-smi.txt")"
	else
		# compute_cap is a field of newer drivers only.
		IFS=, read -r gpu_name gpu_driver gpu_mem_mib gpu_cc < <(timeout 10 nvidia-smi \
			--query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader,nounits 2>/dev/null ||
			timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits 2>/dev/null)
		gpu_name=$(echo "${gpu_name:-}" | sed 's/^ *//; s/ *$//')
		for f in gpu_driver gpu_mem_mib gpu_cc; do printf -v "$f" '%s' "$(echo "${!f:-}" | tr -d ' ')"; done
		driver_cuda=$(sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' "$out/nvidia-smi.txt" | head -n 1)
		[[ -n $gpu_name ]] || no_gpu="nvidia-smi lists no GPU"
	fi
	[[ -z $no_gpu ]] || problems+=("$no_gpu")
	cat "$out/nvidia-smi.txt" 2>/dev/null

	# The libraries: the export lines go into this shell even when something is missing (taken from the
	# JSON then), so that the stages after this one get as far as they can and say what failed.
	exports=$(timeout 15 bash "$root/scripts/gpu-env.sh" --json "$out/env.json" 2>"$out/env.txt")
	rc=$?
	cat "$out/env.txt"
	if [[ $rc == 0 ]]; then
		eval "$exports"
	elif [[ $(status_of "$rc") == timeout ]]; then
		problems+=("gpu-env.sh ran out of time (env.txt)")
	else
		problems+=("gpu-env.sh: not found: $(sed -n 's/^  "missing": \[\(.*\)\],$/\1/p' "$out/env.json" | tr -d '"')")
		f=$(json_get "$out/env.json" ld_library_path)
		[[ -z $f ]] || export LD_LIBRARY_PATH=$f${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
		f=$(json_get "$out/env.json" torch_python)
		[[ -z $f ]] || export RESNET_TORCH_PYTHON=$f
	fi
	torch_python=${RESNET_TORCH_PYTHON:-}
	torch_version=$(json_get "$out/env.json" torch_version)
	if [[ -f $out/env.json ]]; then
		f=$(json_get "$out/env.json" set_from)
		libs_note="Libraries: $(lib_desc cudnn cuDNN), $(lib_desc cublas cuBLAS), $(lib_desc nvrtc NVRTC), $(lib_desc nccl NCCL)${f:+, from $f}."
	fi

	for f in bin/resnet scripts/bench_pytorch.py scripts/gpu-test.sh; do
		[[ -e $root/$f ]] || problems+=("the bundle lacks $f")
	done
	if resnet_version=$(timeout 10 "$resnet" version 2>&1); then
		resnet_version=${resnet_version%%$'\n'*}
	else
		problems+=("bin/resnet version failed: ${resnet_version##*$'\n'}")
		resnet_version=''
	fi

	local note=''
	((${#problems[@]} == 0)) || note=$(printf '%s; ' "${problems[@]}")
	local report=null
	[[ ! -s $out/env.json ]] || report=$(tr '\n' ' ' <"$out/env.json")
	stage_write "$( ((${#problems[@]} == 0)) && echo pass || echo fail)" "${note%; }" \
		"\"ld_library_path\": $(json_str "${LD_LIBRARY_PATH:-}"), \"torch_python\": $(json_str "$torch_python"), \"gpu_env_exit\": $rc, \"gpu_env\": $report"
}

# ---- 2. tests --------------------------------------------------------------------------------------------
stage_tests() {
	stage_begin tests 140
	gpu_gate || return 0
	# The binaries' own -test.timeout fires first, so a hang leaves its goroutine dump in the log.
	OUT=$out/tests RESNET_GPU_TEST_TIMEOUT=$((stage_box - 15))s RESNET_GPU_ENV_DONE=1 \
		boxed "$stage_box" "$out/tests.log" bash "$root/scripts/gpu-test.sh"
	local rc=$? line='' st name counts bins=() failed=() sep='' p f s nccl
	tail -n 20 "$out/tests.log"
	while read -r st name _ _ counts _; do
		counts=${counts%,}
		IFS=/ read -r p f s <<<"$counts"
		bins+=("{\"name\": $(json_str "$name"), \"status\": $(json_str "$st"), \"pass\": $(json_num "$p"), \"fail\": $(json_num "$f"), \"skip\": $(json_num "$s")}")
		line+="$sep$name $counts"
		sep=', '
	done < <(grep -E '^(PASS|FAIL) .* tests \(pass/fail/skip' "$out/tests/summary.txt" 2>/dev/null)
	mapfile -t failed < <(cat "$out"/tests/*.log 2>/dev/null | sed -n 's/^--- FAIL: \([^ ]*\).*/\1/p' | head -n 20)
	# NCCL on this GPU: the collectives of a group of one rank (the test that data-parallel training on a
	# machine with more GPUs builds on; scripts/gpu-test.sh --ddp runs the rest there).
	nccl=$(cat "$out"/tests/*.log 2>/dev/null | sed -n 's/^--- \(PASS\|FAIL\|SKIP\): TestCollectivesOneRank .*/\1/p' |
		head -n 1 | tr '[:upper:]' '[:lower:]')
	nccl=${nccl:-not run}
	local status
	status=$(status_of "$rc")
	[[ $status != pass || ${#bins[@]} -gt 0 ]] || status=fail
	[[ -n ${line:-} ]] || line=$(tail -n 1 "$out/tests.log")
	stage_write "$status" "${line:+$line${bins[0]:+ (pass/fail/skip)}; }NCCL one rank: $nccl${failed[0]:+; failed: ${failed[*]}}" \
		"\"binaries\": [$(IFS=,; echo "${bins[*]-}")], \"nccl_one_rank\": $(json_str "$nccl"), \"failed_tests\": $(json_strs ${failed[@]+"${failed[@]}"})"
}

# ---- 3. bench --------------------------------------------------------------------------------------------
# One run per line, in the order they run: id, its box in seconds, whose, model, batch, mode (fp32, tf32,
# bf16: ours --precision bf16, PyTorch bf16 autocast; bf16-cl: the same with ours --layout nhwc, PyTorch
# channels_last; bf16-cl-graphs: ours bf16-cl with --graphs). The runs past the stage's box are skipped.
readonly BENCH_RUNS="
r50-ours-fp32      60 ours  resnet50       256 fp32
r50-torch-fp32     45 torch resnet50       256 fp32
r50-torch-bf16-cl  40 torch resnet50       256 bf16-cl
c56-ours-fp32      25 ours  cifar_resnet56 128 fp32
c56-torch-fp32     25 torch cifar_resnet56 128 fp32
c56-torch-bf16-cl  25 torch cifar_resnet56 128 bf16-cl
r50-ours-bf16      40 ours  resnet50       256 bf16
r50-torch-bf16     35 torch resnet50       256 bf16
r50-ours-bf16-cl   40 ours  resnet50       256 bf16-cl
r50-ours-bf16-clg  40 ours  resnet50       256 bf16-cl-graphs
r50-ours-tf32      45 ours  resnet50       256 tf32
r50-torch-tf32     40 torch resnet50       256 tf32
"
run_json=() # one JSON object per finished run
run_row=()  # its row of the table, less the last column
run_key=()  # model/whose/mode, to find the PyTorch fp32 run of a model
run_ips=()
run_status='' # of the last run, and why it failed
run_error=''

# bench_steps MODEL: "warmup steps", the same for both implementations.
bench_steps() { [[ $1 == resnet50 ]] && echo "3 10" || echo "5 50"; }

bench_render() {
	local i ratio base j model
	bench_md="### GPU training throughput"$'\n\n'
	bench_md+="Synthetic input; a step is forward + backward + SGD update (momentum, weight decay). fp32 is strict fp32;"$'\n'
	bench_md+="TF32 lets cuDNN and cuBLAS use TF32 tensor cores (ours: RESNET_CUDA_TF32=1; PyTorch: --tf32, its default for"$'\n'
	bench_md+="convolutions). bf16: ours keeps 4-D activations in bf16 (cuda.precision), weights and optimizer in fp32;"$'\n'
	bench_md+="PyTorch runs under bf16 autocast. NHWC: ours cuda.layout nhwc, PyTorch channels_last."$'\n'
	bench_md+="PyTorch runs eagerly (no torch.compile). Peak GPU memory: the most the tensors held during the"$'\n'
	bench_md+="timed steps (ours: the allocator's peak in use; PyTorch: torch.cuda.max_memory_allocated)."$'\n\n'
	bench_md+="| model | batch | implementation | precision | layout | img/s | ms/step | peak GPU memory (MiB) | vs PyTorch fp32 |"$'\n'
	bench_md+="|---|---|---|---|---|---|---|---|---|"$'\n'
	for i in "${!run_row[@]}"; do
		model=${run_key[i]%%/*}
		ratio=-
		for j in "${!run_key[@]}"; do
			if [[ ${run_key[j]} == "$model/torch/fp32" ]]; then
				base=${run_ips[j]}
				[[ -z $base || -z ${run_ips[i]} ]] ||
					ratio=$(awk -v a="${run_ips[i]}" -v b="$base" 'BEGIN { printf "%.2fx", a / b }')
			fi
		done
		bench_md+="${run_row[i]} $ratio |"$'\n'
	done
	local w s
	read -r w s < <(bench_steps resnet50)
	bench_md+=$'\n'"Commands (resnet50: $w warm-up and $s timed steps; cifar_resnet56: $(bench_steps cifar_resnet56 | sed 's/ / and /') timed):"$'\n'
	bench_md+="\`bin/resnet bench --device cuda --model resnet50 --batch-size 256 --warmup $w --steps $s --json\` (TF32: with"$'\n'
	bench_md+="RESNET_CUDA_TF32=1, or with \`--precision bf16\` and \`--layout nhwc\`); \`python scripts/bench_pytorch.py --device cuda"$'\n'
	bench_md+="--model resnet50 --batch 256 --warmup $w --steps $s --json\`, with \`--tf32\`, \`--precision bf16\` or"$'\n'
	bench_md+="\`--precision bf16 --channels-last\`."$'\n'
}

# bench_one ID BOX WHOSE MODEL BATCH MODE: one run, recorded.
bench_one() {
	local id=$1 box=$2 whose=$3 model=$4 batch=$5 mode=$6 w s rc status t0=$SECONDS impl precision layout
	local -a cmd envs=()
	read -r w s < <(bench_steps "$model")
	precision=fp32
	layout=NCHW
	if [[ $whose == ours ]]; then
		impl="resnet"
		cmd=("$resnet" bench --device cuda --model "$model" --batch-size "$batch" --warmup "$w" --steps "$s" --json)
		[[ $mode != tf32 ]] || envs=(RESNET_CUDA_TF32=1)
		[[ $mode != bf16* ]] || cmd+=(--precision bf16)
		[[ $mode != bf16-cl* ]] || cmd+=(--layout nhwc)
		[[ $mode != *-graphs ]] || cmd+=(--graphs)
	else
		impl="PyTorch${torch_version:+ $torch_version}"
		cmd=("$torch_python" "$root/scripts/bench_pytorch.py" --device cuda --model "$model" --batch "$batch"
			--warmup "$w" --steps "$s" --json)
		[[ $mode != tf32 ]] || cmd+=(--tf32)
		[[ $mode != bf16* ]] || cmd+=(--precision bf16)
		[[ $mode != bf16-cl ]] || cmd+=(--channels-last)
	fi
	case $whose/$mode in
	*/tf32) precision=TF32 ;;
	ours/bf16) precision=bf16 ;;
	ours/bf16-cl) precision=bf16 layout=NHWC ;;
	ours/bf16-cl-graphs) precision="bf16, CUDA graphs" layout=NHWC ;;
	torch/bf16) precision="bf16 autocast" ;;
	torch/bf16-cl) precision="bf16 autocast" layout="NHWC (channels_last)" ;;
	esac
	echo "-- $id: ${envs[*]+${envs[*]} }${cmd[*]}"
	if [[ $whose == torch && -z $torch_python ]]; then
		rc=skipped
		echo "no python with torch" >"$out/bench/$id.log"
	else
		env ${envs[@]+"${envs[@]}"} timeout -k 5 "$box" "${cmd[@]}" >"$out/bench/$id.json" 2>"$out/bench/$id.log"
		rc=$?
	fi
	if [[ $rc == skipped ]]; then
		status="skipped: no python with torch"
	else
		status=$(status_of "$rc")
	fi
	local ips ms peak
	ips=$(json_get "$out/bench/$id.json" images_per_sec)
	ms=$(json_get "$out/bench/$id.json" step_ms)
	peak=$(json_get "$out/bench/$id.json" peak_device_bytes)
	[[ $status != pass || -n $ips ]] || status="fail: no images_per_sec in its output"
	run_error=''
	if [[ $status != pass ]]; then
		ips=''
		run_error=$(last_line "$out/bench/$id.log")
		tail -n 5 "$out/bench/$id.log"
	fi
	local ips_f ms_f peak_f
	ips_f=$(num "$ips" 1 %.1f)
	ms_f=$(num "$ms" 1 %.1f)
	peak_f=$(num "$peak" 9.5367431640625e-07 %.0f) # bytes to MiB (2^-20)
	echo "   $status: $ips_f img/s, $ms_f ms/step, peak $peak_f MiB ($((SECONDS - t0)) s)"
	[[ $status == pass ]] || ips_f=$status
	run_status=$status
	run_row+=("| $model | $batch | $impl | $precision | $layout | $ips_f | $ms_f | $peak_f |")
	run_key+=("$model/$whose/$mode")
	run_ips+=("$ips")
	run_json+=("{\"id\": $(json_str "$id"), \"implementation\": $(json_str "$impl"), \"model\": $(json_str "$model"), \"batch\": $batch, \"precision\": $(json_str "$precision"), \"layout\": $(json_str "$layout"), \"status\": $(json_str "$status"), \"seconds\": $((SECONDS - t0)), \"box_s\": $box, \"images_per_sec\": $(json_num "$ips"), \"step_ms\": $(json_num "$ms"), \"peak_device_bytes\": $(json_num "$peak"), \"error\": $(json_str "$run_error"), \"command\": $(json_str "${envs[*]-}${envs[*]+ }${cmd[*]}")}")
	bench_render
}

stage_bench() {
	stage_begin bench 210
	gpu_gate || return 0
	mkdir -p "$out/bench"
	local id box whose model batch mode left nfailed=0 skipped=0 ran=0 note first_error=''
	while read -r id box whose model batch mode; do
		[[ -n $id ]] || continue
		left=$(($(stage_left) - 5))
		if ((left < 15)); then
			skipped=$((skipped + 1))
			echo "-- $id: skipped, out of time"
			continue
		fi
		bench_one "$id" "$((box < left ? box : left))" "$whose" "$model" "$batch" "$mode"
		ran=$((ran + 1))
		if [[ $run_status != pass ]]; then
			nfailed=$((nfailed + 1))
			[[ -n $first_error ]] || first_error="$id: ${run_error:-$run_status}"
		fi
		stage_write running "$ran runs" "\"runs\": [$(IFS=,; echo "${run_json[*]}")]"
	done <<<"$BENCH_RUNS"
	note="$ran runs, $nfailed failed"
	((skipped == 0)) || note+=", $skipped skipped (out of time)"
	[[ -z $first_error ]] || note+="; first: $first_error"
	stage_write "$( ((nfailed == 0 && ran > 0)) && echo pass || echo fail)" "$note" \
		"\"runs\": [$(IFS=,; echo "${run_json[*]-}")]"
}

# ---- 4. demo ---------------------------------------------------------------------------------------------
# demo_run NAME DEVICE BOX NICENESS [ARGS...]: trains demo.yaml on DEVICE (with more train ARGS) into
# demo/NAME and evaluates it into demo/NAME-eval.json; writes "status seconds" to demo/NAME.status.
demo_run() {
	local name=$1 dev=$2 box=$3 nice=$4 t0=$SECONDS rc epochs=() secs
	shift 4
	[[ -z ${GPU_CHECK_DEMO_EPOCHS:-} ]] || epochs=(--epochs "$GPU_CHECK_DEMO_EPOCHS")
	boxed "$box" "$out/demo/$name-train.log" nice -n "$nice" "$resnet" train --config demo.yaml --device "$dev" \
		${epochs[@]+"${epochs[@]}"} "$@" --out "$out/demo/$name"
	rc=$?
	secs=$((SECONDS - t0))
	if [[ $rc == 0 ]]; then
		timeout -k 5 20 "$resnet" eval --checkpoint "$out/demo/$name" --device "$dev" --json \
			>"$out/demo/$name-eval.json" 2>"$out/demo/$name-eval.log"
		rc=$?
	fi
	echo "$(status_of "$rc") $secs" >"$out/demo/$name.status"
}

stage_demo() {
	stage_begin demo 100
	gpu_gate || return 0
	mkdir -p "$out/demo"
	local box=$(($(stage_left) - 25)) cpu_pid
	# The CPU run in the background, at low priority, while the GPU runs (fp32, then bf16) feed the GPU.
	demo_run cpu cpu "$box" 10 &
	cpu_pid=$!
	demo_run cuda cuda "$box" 0
	demo_run cuda-bf16 cuda "$(($(stage_left) - 25))" 0 --set cuda.precision=bf16
	wait "$cpu_pid"
	local d rows='' fields='' status=pass note top1 top5 loss ips gpu_err='' cpu_err='' bf16_err='' why failures=()
	for d in cuda cpu cuda-bf16; do
		local st secs
		read -r st secs <"$out/demo/$d.status"
		top1=$(json_get "$out/demo/$d-eval.json" top1_err)
		top5=$(json_get "$out/demo/$d-eval.json" top5_err)
		loss=$(json_get "$out/demo/$d-eval.json" loss)
		ips=$(sed -n 's/.*  \([0-9.]*\) img\/s$/\1/p' "$out/demo/$d-train.log" | tail -n 1)
		why=''
		if [[ $st != pass || -z $top1 ]]; then
			status=fail
			why=$(last_line "$out/demo/$d-train.log")
			[[ ! -s $out/demo/$d-eval.log ]] || why=$(last_line "$out/demo/$d-eval.log")
			failures+=("$d run $st: ${why:-no top1_err in its eval output}")
			tail -n 5 "$out/demo/$d-train.log"
		fi
		case $d in cuda) gpu_err=$top1 ;; cpu) cpu_err=$top1 ;; *) bf16_err=$top1 ;; esac
		rows+="| $d | $st | $(num "$top1" 100 %.2f%%) | $(num "$top5" 100 %.2f%%) |"
		rows+=" $(num "$loss" 1 %.4f) | $secs s | ${ips:--} |"$'\n'
		fields+="\"${d/-/_}\": {\"status\": $(json_str "$st"), \"seconds\": $secs, \"top1_err\": $(json_num "$top1"), \"top5_err\": $(json_num "$top5"), \"loss\": $(json_num "$loss"), \"train_images_per_sec\": $(json_num "$ips"), \"error\": $(json_str "$why")}, "
	done
	local diff=''
	if [[ -n $gpu_err && -n $cpu_err ]]; then
		diff=$(awk -v a="$gpu_err" -v b="$cpu_err" 'BEGIN { d = a - b; printf "%.4f", d < 0 ? -d : d }')
		if awk -v d="$diff" -v t="$DEMO_TOLERANCE" 'BEGIN { exit !(d > t) }'; then
			status=fail
			note="top-1 errors differ by $(awk -v d="$diff" 'BEGIN { printf "%.1f", 100 * d }') points, more than $(awk -v t="$DEMO_TOLERANCE" 'BEGIN { printf "%.0f", 100 * t }')"
		else
			note="top-1 error GPU $(num "$gpu_err" 100 %.1f%%), CPU $(num "$cpu_err" 100 %.1f%%)"
		fi
	else
		note=$(printf '%s; ' "${failures[@]}")
		note=${note%; }
	fi
	[[ -z $bf16_err ]] || note+="; GPU bf16 $(num "$bf16_err" 100 %.1f%%)"
	demo_md="### demo.yaml on the GPU and on the CPU"$'\n\n'
	demo_md+="Same config and seed (cifar_resnet8 on the built-in synthetic set, ${GPU_CHECK_DEMO_EPOCHS:-4} epochs), trained at the same time"$'\n'
	demo_md+="(the CPU run at nice 10); \`bin/resnet train --config demo.yaml --device cuda|cpu\`, then \`bin/resnet eval --json\`."$'\n'
	demo_md+="The top-1 errors of cuda and cpu must agree to $(awk -v t="$DEMO_TOLERANCE" 'BEGIN { printf "%.0f", 100 * t }') points (the spread of CPU runs under tiny perturbations)."$'\n'
	demo_md+="cuda-bf16 is the GPU run again with \`--set cuda.precision=bf16\`, reported beside them."$'\n\n'
	demo_md+="| device | run | test top-1 error | top-5 | test loss | training time | training img/s |"$'\n'
	demo_md+="|---|---|---|---|---|---|---|"$'\n'
	demo_md+=$rows
	stage_write "$status" "$note" "${fields}\"top1_difference\": $(json_num "$diff"), \"tolerance\": $DEMO_TOLERANCE"
}

[[ $dry == 0 ]] || say "dry run: the stages that need a GPU are skipped"
write_summary
stage_env
stage_tests
stage_bench
stage_demo
echo
cat "$out/summary.md"
echo
say "done in $SECONDS s: $out/summary.json, $out/summary.md"
[[ $dry == 1 ]] && exit 0
for f in "$out"/stages/*.json; do
	grep -q '^{"stage": "[a-z]*", "status": "pass"' "$f" || exit 1
done
exit 0
