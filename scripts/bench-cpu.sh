#!/usr/bin/env bash
# CPU training throughput of `resnet bench` against the PyTorch peer (scripts/bench_pytorch.py) on the same
# cores, plus the GEMM's GFLOP/s and its fraction of the FP32 FMA peak.
#
#     scripts/bench-cpu.sh            # 3 rounds of the three configurations
#     ROUNDS=5 scripts/bench-cpu.sh
#     scripts/bench-cpu.sh --family   # one ImageNet member of each family of the zoo instead
#
# It builds bin/resnet (make build), then for each round runs every configuration (cifar_resnet20 batch 128,
# cifar_resnet56 batch 128, resnet50 batch 16) with ours and the peer back to back, alternating which goes
# first, so both see the same machine load; it prints each run, then a table of medians, ranges and the
# ratio ours/PyTorch per round. Both use all usable cores (GOMAXPROCS and torch.set_num_threads).
#
# The peak: FP32 FLOP per cycle per core x clock. The default 32 is two 256-bit FMA pipes (Zen 4 executes
# an AVX-512 FMA on both halves, so AVX2 and AVX-512 have the same peak; Intel server cores with two
# 512-bit FMA units have 64). Override with PEAK_FLOP_PER_CYCLE. The clock is "cpu MHz" from /proc/cpuinfo
# (CLOCK_MHZ overrides); on a VM that is the nominal clock, and a core that boosts above it can measure
# more than "100%".
#
# Environment: ROUNDS (3), WARMUP (2), STEPS_CIFAR (5), STEPS_IMAGENET (3), PEAK_FLOP_PER_CYCLE (32),
# CLOCK_MHZ (from /proc/cpuinfo).
set -euo pipefail

cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
warmup=${WARMUP:-2}
configs=(
	"cifar_resnet20 128 ${STEPS_CIFAR:-5}"
	"cifar_resnet56 128 ${STEPS_CIFAR:-5}"
	"resnet50 16 ${STEPS_IMAGENET:-3}"
)
case "${1:-}" in
--family)
	# resnet50 is the yardstick the other members are read against.
	configs=()
	for m in resnet50 resnext50_32x4d wide_resnet50_2 resnetv2_50 seresnet50 densenet121 inception_resnet_v2; do
		configs+=("$m 16 ${STEPS_IMAGENET:-3}")
	done
	;;
"") ;;
*)
	echo "bench-cpu.sh: unknown argument $1 (want --family or nothing)" >&2
	exit 2
	;;
esac

make build >&2
py=$(scripts/setup-torch.sh)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(uptime | sed 's/.*load/load/')"
for ((r = 1; r <= rounds; r++)); do
	for c in "${configs[@]}"; do
		read -r model batch steps <<<"$c"
		ours=(bin/resnet bench --device cpu --model "$model" --batch-size "$batch" --steps "$steps" --warmup "$warmup" --json)
		peer=("$py" scripts/bench_pytorch.py --device cpu --model "$model" --batch "$batch" --steps "$steps" --warmup "$warmup" --json)
		if ((r % 2)); then
			"${ours[@]}" >"$out/ours-$model-$r.json"
			"${peer[@]}" >"$out/torch-$model-$r.json"
		else
			"${peer[@]}" >"$out/torch-$model-$r.json"
			"${ours[@]}" >"$out/ours-$model-$r.json"
		fi
		echo "round $r $model b$batch: ours $(grep -o '"images_per_sec": [0-9.]*' "$out/ours-$model-$r.json" | cut -d' ' -f2)," \
			"pytorch $(grep -o '"images_per_sec": [0-9.]*' "$out/torch-$model-$r.json" | cut -d' ' -f2) images/s"
	done
done
echo "after: $(uptime | sed 's/.*load/load/')"

# GEMM throughput: the multi-threaded GEMM and the single-threaded one (the micro-kernel with its packing).
gemm=$(go test -run '^$' -bench 'BenchmarkSgemm' -benchtime 20x ./internal/cpu/)

"$py" - "$out" "$rounds" "${PEAK_FLOP_PER_CYCLE:-32}" "${CLOCK_MHZ:-$(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2 | xargs)}" "$(nproc)" "$gemm" "$(for c in "${configs[@]}"; do echo "${c%% *}"; done)" <<'EOF'
import json, os, re, statistics, sys

out, rounds, fpc, mhz, cores, gemm = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
models = []
for name in sorted(os.listdir(out)):
    m = re.match(r"ours-(.*)-\d+\.json$", name)
    if m and m.group(1) not in models:
        models.append(m.group(1))
order = sys.argv[7].split()
models.sort(key=lambda m: order.index(m) if m in order else len(order))

def load(kind, model, r):
    with open(os.path.join(out, f"{kind}-{model}-{r}.json")) as f:
        return json.load(f)

print()
print("| model | batch | ours img/s (median, range) | PyTorch img/s (median, range) | ours / PyTorch (median, range) | peak RSS ours / PyTorch |")
print("|---|---|---|---|---|---|")
for model in models:
    ours = [load("ours", model, r) for r in range(1, rounds + 1)]
    peer = [load("torch", model, r) for r in range(1, rounds + 1)]
    o = [x["images_per_sec"] for x in ours]
    p = [x["images_per_sec"] for x in peer]
    ratios = [a / b for a, b in zip(o, p)]
    rss = f"{max(x.get('peak_rss_bytes', 0) for x in ours) / 2**20:.0f} / {max(x.get('peak_rss_bytes', 0) for x in peer) / 2**20:.0f} MiB"
    print(f"| {model} | {ours[0]['batch']} | {statistics.median(o):.1f} ({min(o):.1f}-{max(o):.1f}) | "
          f"{statistics.median(p):.1f} ({min(p):.1f}-{max(p):.1f}) | {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) | {rss} |")

peak_core = fpc * mhz / 1e3
print()
print(f"FP32 FMA peak: {fpc:g} FLOP/cycle/core x {mhz / 1e3:.2f} GHz = {peak_core:.1f} GFLOP/s per core, {peak_core * cores:.1f} on {cores} cores")
print()
print("| GEMM (m x n x k) | threads | GFLOP/s | fraction of peak |")
print("|---|---|---|---|")
for line in gemm.splitlines():
    m = re.match(r"BenchmarkSgemm(SingleThread)?/(\S+?)(-\d+)?\s.*?([\d.]+) GFLOP/s", line)
    if not m:
        continue
    threads = 1 if m.group(1) else cores
    g = float(m.group(4))
    print(f"| {m.group(2)} | {threads} | {g:.1f} | {100 * g / (peak_core * threads):.0f}% |")
EOF
