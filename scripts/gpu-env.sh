#!/usr/bin/env bash
# Points LD_LIBRARY_PATH at the cuDNN and cuBLAS (and NVRTC) shared libraries that the GPU machine's Python
# environment ships (PyTorch's nvidia-* wheels, or torch/lib), and checks that the driver's libcuda.so.1 is
# there. The GPU machine has no CUDA toolkit and no network; the `-tags cuda` binaries dlopen these
# libraries by soname at run time.
#
#   . scripts/gpu-env.sh            # bash: export LD_LIBRARY_PATH (what was found goes to stderr)
#   scripts/gpu-env.sh              # print the export line instead
#
# Sourcing never changes the caller's shell options: the search runs in a child bash (set -euo pipefail)
# and only its export line is evaluated here; sourcing returns 1 when something is missing.
#
# Environment:
#   RESNET_GPU_LIB_DIRS  extra directories (colon-separated) searched first, for every library
#   RESNET_PYTHON        the python whose site-packages to search first (then python3, python)

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
	_resnet_gpu_env=$(bash "${BASH_SOURCE[0]}") && eval "$_resnet_gpu_env"
	_resnet_gpu_rc=$?
	unset _resnet_gpu_env
	if [[ $_resnet_gpu_rc != 0 ]]; then
		unset _resnet_gpu_rc
		return 1
	fi
	unset _resnet_gpu_rc
	return 0
fi

set -euo pipefail

say() { echo "gpu-env: $*" >&2; }

# Python site directories, most likely first: the nvidia namespace package's dirs and torch/lib, found
# without importing torch (find_spec only locates it), then every site-packages dir of that python.
python_dirs() {
	local py
	for py in ${RESNET_PYTHON:-} python3 python /opt/conda/bin/python /usr/bin/python3; do
		command -v "$py" >/dev/null 2>&1 || continue
		"$py" - <<'EOF' 2>/dev/null || true
import importlib.util, os, site, sys
dirs = []
for name in ("nvidia",):
    spec = importlib.util.find_spec(name)
    if spec and spec.submodule_search_locations:
        dirs += list(spec.submodule_search_locations)
spec = importlib.util.find_spec("torch")
if spec and spec.submodule_search_locations:
    dirs += [os.path.join(p, "lib") for p in spec.submodule_search_locations]
try:
    dirs += site.getsitepackages() + [site.getusersitepackages()]
except AttributeError:  # old virtualenv's site module
    pass
dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
print("\n".join(d for d in dirs if os.path.isdir(d)))
EOF
	done
}

# Where to look: the user's dirs, python's dirs, then the usual system places.
roots=()
if [[ -n ${RESNET_GPU_LIB_DIRS:-} ]]; then
	IFS=: read -r -a roots <<<"$RESNET_GPU_LIB_DIRS"
fi
while IFS= read -r d; do roots+=("$d"); done < <(python_dirs)
shopt -s nullglob
roots+=(/usr/local/lib/python3*/dist-packages /usr/lib/python3/dist-packages /opt/conda/lib/python3*/site-packages
	/opt/conda/lib /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
shopt -u nullglob
# Drop repeats, keeping the first position.
uniq_roots=()
for r in "${roots[@]}"; do
	[[ " ${uniq_roots[*]} " == *" $r "* ]] || uniq_roots+=("$r")
done
roots=("${uniq_roots[@]}")

# find_lib SONAME: prints the first copy of SONAME under the roots (a root itself, or up to three levels
# down: nvidia/cudnn/lib, nvidia/cu13/lib, torch/lib).
find_lib() {
	local soname=$1 root hit
	for root in "${roots[@]}"; do
		[[ -d $root ]] || continue
		hit=$(find -L "$root" -maxdepth 4 -name "$soname" \( -type f -o -type l \) -print -quit 2>/dev/null || true)
		if [[ -n $hit ]]; then
			echo "$hit"
			return 0
		fi
	done
	return 1
}

# The driver comes from the system, not from Python: the loader's cache, then the usual directories.
find_driver() {
	local d hit extra=${RESNET_GPU_LIB_DIRS:-}
	for d in ${extra//:/ } /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/nvidia/lib64 \
		/usr/local/nvidia/lib /usr/lib/wsl/lib; do
		if [[ -e $d/libcuda.so.1 ]]; then
			echo "$d/libcuda.so.1"
			return 0
		fi
	done
	hit=$(/sbin/ldconfig -p 2>/dev/null | awk '$1 == "libcuda.so.1" && /x86-64|x86_64/ {print $NF; exit}' || true)
	[[ -n $hit ]] && echo "$hit"
}

# What the python environment has, for the logs (docs/benchmarks.md wants the versions).
python_versions() {
	local py
	for py in ${RESNET_PYTHON:-} python3 python; do
		command -v "$py" >/dev/null 2>&1 || continue
		"$py" - <<'EOF' 2>/dev/null && return 0
import importlib.metadata as md
names = sorted(d.metadata["Name"] for d in md.distributions()
               if d.metadata["Name"] and (d.metadata["Name"].lower().startswith("nvidia-") or d.metadata["Name"].lower() == "torch"))
print("; ".join(f"{n} {md.version(n)}" for n in names) or "no torch or nvidia-* packages")
EOF
	done
	echo "no python found"
}

say "python packages: $(python_versions)"
missing=()
dirs=()
add_dir() {
	local d
	d=$(dirname "$1")
	[[ " ${dirs[*]} " == *" $d "* ]] || dirs+=("$d")
}

# need LABEL SONAME...: the first SONAME found wins; nothing found is an error.
need() {
	local label=$1 so path
	shift
	for so in "$@"; do
		if path=$(find_lib "$so"); then
			say "$label: $path"
			add_dir "$path"
			[[ $so == "$1" ]] || say "warning: found $so, not $1; the CUDA build is compiled against $1"
			return 0
		fi
	done
	missing+=("$label ($*)")
}

need cuDNN libcudnn.so.9
need cuBLAS libcublas.so.13 libcublas.so.12
need cuBLASLt libcublasLt.so.13 libcublasLt.so.12
# cuDNN loads NVRTC itself for its runtime-compiled engines, and finds it only through the search path
# (its RUNPATH names the CUDA 12 wheel layout); most convolutions work without it, so only warn.
if path=$(find_lib libnvrtc.so.13 || find_lib libnvrtc.so.12); then
	say "NVRTC: $path"
	add_dir "$path"
else
	say "warning: libnvrtc.so.13 not found; cuDNN's runtime-compiled engines will be unavailable"
fi

if driver=$(find_driver); then
	say "driver: $driver"
	# Only add the driver's directory when the loader would not find it by itself.
	if ! /sbin/ldconfig -p 2>/dev/null | grep -q "libcuda.so.1 .*=> $driver\$"; then
		add_dir "$driver"
	fi
else
	missing+=("the NVIDIA driver's libcuda.so.1 (is this a GPU machine? try nvidia-smi)")
fi

if ((${#missing[@]} > 0)); then
	say "error: not found:"
	for m in "${missing[@]}"; do say "  $m"; done
	say "searched: ${roots[*]}"
	say "set RESNET_GPU_LIB_DIRS=dir1:dir2 to the directories that hold them, or RESNET_PYTHON to the python whose torch has them"
	exit 1
fi

ld_path=$(
	IFS=:
	echo "${dirs[*]}"
)
say "LD_LIBRARY_PATH += $ld_path"
# The caller's LD_LIBRARY_PATH is expanded where the line is evaluated, not here.
# shellcheck disable=SC2016
printf 'export LD_LIBRARY_PATH=%q"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n' "$ld_path"
