#!/usr/bin/env bash
# Installs the CUDA 13.0 build toolchain (nvcc, CUDA/cuBLAS/cuDNN/NCCL headers) from NVIDIA's PyPI wheels into a
# versioned cache directory outside the checkout, checks that it works, and prints the environment to use
# as shell `export` lines on stdout (progress goes to stderr), so that
#
#     eval "$(scripts/setup-cuda.sh)"
#
# sets it up. A second run finds the stamp file and only re-checks the files (well under a second).
# No GPU is needed: this is what builds kernels/*.cu and the `-tags cuda` Go code here and in CI.
#
# Options:
#   --check   also compile a test kernel to a fatbin (always done right after an install)
#   --quiet   no progress messages when the toolchain is already installed
#
# Environment:
#   RESNET_CUDA_CACHE  cache root (default $HOME/.cache/resnet); the toolchain goes into
#                      $RESNET_CUDA_CACHE/cuda-<nvcc version>-cudnn-<cudnn version>
#   RESNET_CUDA_HOME   use this CUDA toolkit (e.g. /usr/local/cuda in Dockerfile.cuda) instead of the wheels;
#                      cudnn.h is then looked up in $RESNET_CUDNN_HOME/include, the toolkit and /usr/include,
#                      nccl.h likewise in $RESNET_NCCL_HOME/include (libnccl-dev puts it in /usr/include)
#   RESNET_PYTHON      python used to run pip (default python3)
set -euo pipefail

# The CUDA 13.0 Update 2 set, which is also what PyTorch's cu130 wheels pin (cudart 13.0.96, cuBLAS 13.1.0.3,
# cuDNN 9.13.0.50): the GPU machine's driver reports CUDA 13.0 and its cuDNN/cuBLAS come from PyTorch, so
# headers from these versions are never newer than the libraries the binary loads there. nvcc, nvvm and crt
# 13.0.88 are that update's compiler (they did not change from 13.0.1). nvidia-cuda-nvcc does not pin
# nvidia-nvvm / nvidia-cuda-crt, so they are pinned here; otherwise pip takes the newest (13.x) cicc.
# NCCL 2.27.7 is PyTorch's cu130 pin too (built with CUDA 13.0); only its header is used here (libnccl.so.2
# is opened at run time, from PyTorch's wheel on the GPU machine), and NCCL keeps its ABI within 2.x. It is
# installed by a step of its own (its own stamp), so adding it to a cache made before it needs no reinstall.
readonly NVCC_VERSION=13.0.88
readonly CUDNN_VERSION=9.13.0.50
readonly WHEELS=(
	"nvidia-cuda-nvcc==${NVCC_VERSION}"
	"nvidia-nvvm==${NVCC_VERSION}"
	"nvidia-cuda-crt==${NVCC_VERSION}"
	"nvidia-cuda-runtime==13.0.96"
	"nvidia-cuda-cccl==13.0.85"
	"nvidia-cublas==13.1.0.3"
	"nvidia-cudnn-cu13==${CUDNN_VERSION}"
)
readonly NCCL_WHEEL="nvidia-nccl-cu13==2.27.7"
# nvcc's expected "release" string, checked against `nvcc --version`.
readonly NVCC_RELEASE="release 13.0, V${NVCC_VERSION}"

check=0
quiet=0
for arg in "$@"; do
	case "$arg" in
	--check) check=1 ;;
	--quiet) quiet=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "setup-cuda.sh: unknown argument '$arg' (try --help)" >&2
		exit 2
		;;
	esac
done

say() { [[ $quiet == 1 ]] || echo "setup-cuda: $*" >&2; }
note() { echo "setup-cuda: $*" >&2; }
die() {
	echo "setup-cuda: error: $*" >&2
	exit 1
}

# compile_test NVCC: builds a small kernel that uses the bf16/fp16 headers into a fatbin with the same
# targets as `make kernels`, so a broken nvcc/cicc/ptxas/fatbinary/host-compiler setup fails here.
compile_test() {
	local nvcc=$1 dir ok=1
	dir=$(mktemp -d)
	cat >"$dir/probe.cu" <<'EOF'
#include <cuda_bf16.h>
#include <cuda_fp16.h>
extern "C" __global__ void probe_scale_bf16(__nv_bfloat16* y, const float* x, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __float2bfloat16(a * __expf(x[i]));
}
EOF
	if ! "$nvcc" -fatbin -O3 -std=c++17 --use_fast_math \
		-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
		-gencode arch=compute_90,code=compute_90 -o "$dir/probe.fatbin" "$dir/probe.cu" >"$dir/log" 2>&1 ||
		[[ ! -s $dir/probe.fatbin ]]; then
		cat "$dir/log" >&2
		ok=0
	fi
	rm -rf "$dir"
	[[ $ok == 1 ]] || die "$nvcc could not compile a test kernel to a fatbin (output above); nvcc needs gcc/g++ on PATH"
	say "nvcc compiled a test kernel (sm_80, sm_90 SASS + compute_90 PTX)"
}

# first_dir_with FILE DIR...: prints the first DIR that holds FILE.
first_dir_with() {
	local file=$1 d
	shift
	for d in "$@"; do
		if [[ -n $d && -e $d/$file ]]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

# emit_env CUDA_HOME CUDNN_INCLUDE CUDNN_LIB NCCL_INCLUDE NCCL_LIB: checks the toolkit and prints the
# export lines.
emit_env() {
	local cuda_home=$1 cudnn_inc=$2 cudnn_lib=$3 nccl_inc=$4 nccl_lib=$5 nvcc version inc
	nvcc=$cuda_home/bin/nvcc
	inc=$cuda_home/include
	[[ -x $nvcc ]] || die "no nvcc at $nvcc"
	version=$("$nvcc" --version 2>&1) || die "'$nvcc --version' failed: $version"
	for h in cuda.h cuda_runtime.h cublas_v2.h; do
		[[ -f $inc/$h ]] || die "$h not found in $inc"
	done
	[[ -f $cudnn_inc/cudnn.h ]] || die "cudnn.h not found in $cudnn_inc"
	[[ -f $nccl_inc/nccl.h ]] || die "nccl.h not found in $nccl_inc"
	say "nvcc: $(grep -o 'release [^ ]*, V[0-9.]*' <<<"$version" || echo "$version")"
	say "cuDNN headers: $cudnn_inc (version $(cudnn_header_version "$cudnn_inc"))"
	say "NCCL headers: $nccl_inc (version $(nccl_header_version "$nccl_inc"))"

	local path_line=""
	case ":$PATH:" in
	*":$cuda_home/bin:"*) ;;
	*) path_line="export PATH=$(printf %q "$cuda_home/bin"):\"\$PATH\"" ;;
	esac
	local lib=$cuda_home/lib
	[[ -d $lib ]] || lib=$cuda_home/lib64
	# cuBLAS ships its headers inside the CUDA include dir, both in the wheels and in the toolkit.
	printf 'export %s=%q\n' \
		RESNET_CUDA_TOOLKIT "$cuda_home" \
		CUDA_HOME "$cuda_home" \
		NVCC "$nvcc" \
		CUDA_INCLUDE_DIR "$inc" \
		CUBLAS_INCLUDE_DIR "$inc" \
		CUDNN_INCLUDE_DIR "$cudnn_inc" \
		CUDA_LIB_DIR "$lib" \
		CUDNN_LIB_DIR "$cudnn_lib" \
		NCCL_INCLUDE_DIR "$nccl_inc" \
		NCCL_LIB_DIR "$nccl_lib" \
		CGO_CFLAGS "-O2 -g -I$inc -I$cudnn_inc -I$nccl_inc"
	[[ -z $path_line ]] || echo "$path_line"
}

cudnn_header_version() {
	awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{v = v (v == "" ? "" : ".") $3} END{print v}' "$1/cudnn_version.h" 2>/dev/null || true
}

nccl_header_version() {
	awk '/#define NCCL_(MAJOR|MINOR|PATCH) /{v = v (v == "" ? "" : ".") $3} END{print v}' "$1/nccl.h" 2>/dev/null || true
}

# pip_install TARGET WHEEL...: installs the wheels into TARGET (binary wheels only, no pip cache: the
# target is the cache; keeping the wheels in pip's cache too would double the disk use).
pip_install() {
	local target=$1 python=${RESNET_PYTHON:-python3}
	shift
	command -v "$python" >/dev/null || die "$python not found; it is needed to pip-install the CUDA wheels (set RESNET_PYTHON)"
	"$python" -m pip --version >/dev/null 2>&1 || die "'$python -m pip' does not work; install pip for $python"
	PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --no-cache-dir --no-compile \
		--disable-pip-version-check --no-warn-script-location --only-binary=:all: \
		--target "$target" "$@" >&2 || die "pip install failed (see above); is PyPI reachable?"
}

# --- a toolkit given by the caller (the container build) -------------------------------------------------
if [[ -n ${RESNET_CUDA_HOME:-} ]]; then
	say "using the CUDA toolkit at $RESNET_CUDA_HOME (RESNET_CUDA_HOME); nothing to install"
	cudnn_inc=$(first_dir_with cudnn.h "${RESNET_CUDNN_HOME:+$RESNET_CUDNN_HOME/include}" \
		"$RESNET_CUDA_HOME/include" /usr/include /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu) ||
		die "cudnn.h not found; set RESNET_CUDNN_HOME to the cuDNN install (with include/cudnn.h)"
	cudnn_lib=$(first_dir_with libcudnn.so.9 "${RESNET_CUDNN_HOME:+$RESNET_CUDNN_HOME/lib}" \
		"$RESNET_CUDA_HOME/lib64" /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu) || cudnn_lib=""
	nccl_inc=$(first_dir_with nccl.h "${RESNET_NCCL_HOME:+$RESNET_NCCL_HOME/include}" \
		"$RESNET_CUDA_HOME/include" /usr/include /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu) ||
		die "nccl.h not found; install libnccl-dev (or pip install $NCCL_WHEEL) and set RESNET_NCCL_HOME to the directory with include/nccl.h"
	nccl_lib=$(first_dir_with libnccl.so.2 "${RESNET_NCCL_HOME:+$RESNET_NCCL_HOME/lib}" \
		"$RESNET_CUDA_HOME/lib64" /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu) || nccl_lib=""
	[[ $check == 0 ]] || compile_test "$RESNET_CUDA_HOME/bin/nvcc"
	emit_env "$RESNET_CUDA_HOME" "$cudnn_inc" "$cudnn_lib" "$nccl_inc" "$nccl_lib"
	exit 0
fi

# --- the wheels, installed once into the cache ----------------------------------------------------------
cache_root=${RESNET_CUDA_CACHE:-${HOME:?HOME is not set; set RESNET_CUDA_CACHE}/.cache/resnet}
prefix=$cache_root/cuda-${NVCC_VERSION}-cudnn-${CUDNN_VERSION}
stamp=$prefix/.resnet-cuda-stamp
want_stamp=$(printf '%s\n' "${WHEELS[@]}")
# Layout of the CUDA 13 wheels: everything CUDA (nvcc, nvvm/bin/cicc, crt, cccl, cuBLAS) merges into
# nvidia/cu13 as a toolkit tree (bin/, include/, lib/, nvvm/); cuDNN stays in nvidia/cudnn, NCCL in
# nvidia/nccl.
cuda_home=$prefix/nvidia/cu13
cudnn_home=$prefix/nvidia/cudnn
nccl_home=$prefix/nvidia/nccl
nccl_stamp=$prefix/.resnet-nccl-stamp

installed() { [[ -f $stamp && "$(cat "$stamp")" == "$want_stamp" ]]; }
nccl_installed() { [[ -f $nccl_stamp && "$(cat "$nccl_stamp")" == "$NCCL_WHEEL" ]]; }

if installed && nccl_installed; then
	say "CUDA toolchain already installed in $prefix"
else
	mkdir -p "$cache_root"
	# One installer at a time per cache (parallel CI jobs, two make targets); the loser finds the stamps.
	exec 9>"$cache_root/.cuda-install.lock"
	if command -v flock >/dev/null; then
		flock 9
	fi
	if ! installed; then
		note "installing the CUDA ${NVCC_VERSION%.*} toolchain into $prefix (about 840 MiB download, 1.3 GiB on disk):"
		for w in "${WHEELS[@]}"; do note "  $w"; done
		tmp=$(mktemp -d "$cache_root/.cuda-install.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		start=$SECONDS
		pip_install "$tmp" "${WHEELS[@]}"
		t_cuda=$tmp/nvidia/cu13
		[[ -x $t_cuda/bin/nvcc ]] || die "the wheels did not install nvidia/cu13/bin/nvcc; has their layout changed?"
		# Make the tree look like a standard toolkit for the few tools that expect that: nvcc -dlink/-dlto
		# look for lib64/libcudadevrt.a and nvvm/lib64/libnvvm.so. `make kernels` does not need these.
		ln -sfn lib "$t_cuda/lib64"
		mkdir -p "$t_cuda/nvvm/lib64"
		ln -sfn ../../lib/libnvvm.so.4 "$t_cuda/nvvm/lib64/libnvvm.so"
		compile_test "$t_cuda/bin/nvcc"
		echo "$want_stamp" >"$tmp/.resnet-cuda-stamp"
		chmod 755 "$tmp" # mktemp made it 0700
		rm -rf "$prefix"
		mv "$tmp" "$prefix"
		trap - EXIT
		note "installed in $((SECONDS - start)) s ($(du -sh "$prefix" | cut -f1) on disk)"
		check=0 # just compiled the test kernel
	fi
	if ! nccl_installed; then
		note "installing NCCL's headers into $nccl_home: $NCCL_WHEEL"
		tmp=$(mktemp -d "$cache_root/.nccl-install.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		pip_install "$tmp" --no-deps "$NCCL_WHEEL"
		[[ -f $tmp/nvidia/nccl/include/nccl.h ]] || die "the wheel did not install nvidia/nccl/include/nccl.h; has its layout changed?"
		rm -rf "$nccl_home"
		mv "$tmp/nvidia/nccl" "$nccl_home"
		echo "$NCCL_WHEEL" >"$nccl_stamp"
		rm -rf "$tmp"
		trap - EXIT
	fi
	exec 9>&-
fi

nvcc_version=$("$cuda_home/bin/nvcc" --version 2>&1) || die "$cuda_home/bin/nvcc does not run: $nvcc_version"
[[ $nvcc_version == *"$NVCC_RELEASE"* ]] || die "$cuda_home/bin/nvcc is not $NVCC_RELEASE; remove $prefix and rerun"
[[ $check == 0 ]] || compile_test "$cuda_home/bin/nvcc"
emit_env "$cuda_home" "$cudnn_home/include" "$cudnn_home/lib" "$nccl_home/include" "$nccl_home/lib"
