#!/usr/bin/env bash
# The CUDA build environment (nvcc, CUDA/cuBLAS/cuDNN/NCCL include dirs, CGO_CFLAGS), installing the toolchain
# first if it is not there yet (scripts/setup-cuda.sh does the work; a warm call takes ~50 ms).
#
#   . scripts/cuda-env.sh          # bash: export NVCC, CUDA_HOME, CUDA_INCLUDE_DIR, CUDNN_INCLUDE_DIR, NCCL_INCLUDE_DIR, ...
#   scripts/cuda-env.sh            # print the same as `export` lines
#   eval "$(scripts/cuda-env.sh)"  # any POSIX shell
#
# The Makefile's CUDA targets source it in each recipe. Sourcing never changes the caller's shell options:
# the work runs in setup-cuda.sh (set -euo pipefail); only its export lines are evaluated here.
# RESNET_CUDA_HOME=/usr/local/cuda uses an installed toolkit instead of the wheels (see setup-cuda.sh).

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
	# Sourced: keep the caller's options and variables, report failure through the return status.
	_resnet_cuda_env=$(bash "$(dirname "${BASH_SOURCE[0]}")/setup-cuda.sh" --quiet) &&
		eval "$_resnet_cuda_env"
	_resnet_cuda_rc=$?
	unset _resnet_cuda_env
	if [[ $_resnet_cuda_rc != 0 ]]; then
		echo "cuda-env.sh: could not set up the CUDA toolchain (see above)" >&2
		unset _resnet_cuda_rc
		return 1
	fi
	unset _resnet_cuda_rc
	return 0
fi

set -euo pipefail
exec bash "$(dirname "$0")/setup-cuda.sh" --quiet "$@"
