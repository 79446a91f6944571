#!/usr/bin/env bash
# Installs PyTorch, torchvision, timm and safetensors from PyPI into a versioned virtual environment outside the
# checkout and prints the path of its python on stdout (progress goes to stderr), so that
#
#     py=$(scripts/setup-torch.sh) && "$py" scripts/bench_pytorch.py --device cpu ...
#
# runs the peer scripts. Only the reference scripts need it (scripts/bench_pytorch.py,
# scripts/torchvision_golden.py); nothing in the Go build or its tests does. A second run finds the stamp
# file and returns at once. The first run downloads about 3 GB (PyPI's Linux torch wheel brings its CUDA
# libraries along, even for CPU use) and takes one to two minutes.
#
# Environment:
#   RESNET_TORCH_CACHE  cache root (default $HOME/.cache/resnet); the venv goes into
#                       $RESNET_TORCH_CACHE/torch-<torch version>
#   RESNET_PYTHON       python used to create the venv (default python3)
set -euo pipefail

readonly TORCH_VERSION=2.15.0
readonly TIMM_VERSION=1.0.31 # the reference of the pre-activation nets (resnetv2_50)
readonly PACKAGES=(
	"torch==${TORCH_VERSION}"
	"torchvision==0.29.2"
	"timm==${TIMM_VERSION}"
	"safetensors"
	"numpy"
)

case "${1:-}" in
-h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*)
	echo "setup-torch.sh: unknown argument '$1' (try --help)" >&2
	exit 2
	;;
esac

cache=${RESNET_TORCH_CACHE:-$HOME/.cache/resnet}
venv=$cache/torch-$TORCH_VERSION
stamp=$venv/.resnet-installed
python=${RESNET_PYTHON:-python3}

# The stamp holds the package list it was made for: a venv from an older list gets the packages added
# since (pip keeps those already installed at their pinned versions).
if [[ -f $stamp && -x $venv/bin/python ]] && [[ "$(cat "$stamp")" == "${PACKAGES[*]}" ]]; then
	echo "$venv/bin/python"
	exit 0
fi

echo "setup-torch: installing ${PACKAGES[*]} into $venv" >&2
if [[ ! -f $stamp || ! -x $venv/bin/python ]]; then
	rm -rf "$venv"
	mkdir -p "$cache"
	"$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
"$venv/bin/python" -c 'import torch, torchvision, timm, safetensors.torch' >&2 || {
	echo "setup-torch: the installed torch does not import (see above)" >&2
	exit 1
}
echo "${PACKAGES[*]}" >"$stamp"
echo "$venv/bin/python"
