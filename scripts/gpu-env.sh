#!/usr/bin/env bash
# Finds the libraries the `-tags cuda` binaries dlopen by soname on the GPU machine, which has no CUDA
# toolkit and no network: cuDNN 9, cuBLAS and cuBLASLt 13 and NVRTC from the Python environments' NVIDIA
# wheels (site-packages/nvidia/*/lib, or torch/lib) or the system; the driver's libcuda.so.1; zlib's
# libz.so.1, which cuDNN 9 loads; NCCL, for later data-parallel work (reported, never required). It also
# finds a python with torch for the PyTorch peer benchmark (scripts/bench_pytorch.py). The PyTorch
# environment need not be activated.
#
#   . scripts/gpu-env.sh          # bash: export LD_LIBRARY_PATH and RESNET_TORCH_PYTHON (the report goes to stderr)
#   scripts/gpu-env.sh            # print the export lines instead
#   scripts/gpu-env.sh --json F   # the same, and write the report to F as JSON (also when something is missing)
#
# Sourcing never changes the caller's shell options: the search runs in a child bash (set -euo pipefail)
# and only its export lines are evaluated here; sourcing returns 1 (and exports nothing) when a required
# library is missing.
#
# Search order, first = preferred (a directory counts once, at its first place):
#   1. RESNET_GPU_LIB_DIRS (library directories, colon-separated)
#   2. the site-packages of RESNET_PYTHON, $VIRTUAL_ENV and $CONDA_PREFIX (and a conda prefix's lib/)
#   3. the site-packages of every python3 and python on PATH (each is asked; nothing is imported)
#   4. Python environments under /opt: /opt/* itself when it is a venv or conda prefix, /opt/*/.venv, /opt/*/venv
#      (their site-packages found by name, and their own python3 asked)
#   5. ~/.venv and ~/.local
#   6. the loader's default path: the directories of `ldconfig -p`, then /usr/lib/<arch>-linux-gnu,
#      /usr/local/cuda*/lib64 and the like
# In a site-packages directory the libraries are looked for in nvidia/*/lib (cudnn, cu13, cublas, nccl, ...)
# and torch/lib. cuDNN, cuBLAS and cuBLASLt are taken together from the first site-packages (or directory)
# that holds all three, CUDA 13 builds before CUDA 12 ones; only when none does is each the first copy in
# the order. NVRTC and NCCL come from that same place when it has them. A library's version is its wheel's
# (the dist-info whose RECORD lists the file) or the full version in the name the file resolves to.
#
# Environment:
#   RESNET_GPU_LIB_DIRS     extra library directories, searched first
#   RESNET_PYTHON           a python whose site-packages are searched first
#   RESNET_TORCH_PYTHON     the python for the PyTorch benchmark; kept when set
#   RESNET_GPU_OPT_ROOTS    where to look for Python environments (default /opt; colon-separated)
#   RESNET_GPU_SYSTEM_DIRS  the loader's default directories (colon-separated; default: see system_dirs)
#   RESNET_GPU_LDCONFIG     the ldconfig whose cache (-p) is read (default /sbin/ldconfig; empty: none)
# The last three exist so that tests can point the search at fake trees (scripts/gpu_env_test.go).

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
# shellcheck source=scripts/json.sh
. "$(dirname "${BASH_SOURCE[0]}")/json.sh"

json_file=
while (($# > 0)); do
	case $1 in
	--json)
		json_file=${2:?gpu-env.sh: --json needs a file}
		shift
		;;
	-h | --help)
		sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "gpu-env.sh: unknown argument '$1' (try --help)" >&2
		exit 2
		;;
	esac
	shift
done

say() { echo "gpu-env: $*" >&2; }
warnings=()
warn() {
	warnings+=("$*")
	say "warning: $*"
}
shopt -s nullglob

# ---- Where to look ---------------------------------------------------------------------------------------
# A place is a site-packages directory (its libraries are in nvidia/*/lib and torch/lib) or a plain library
# directory; places[i] came from place_from[i], and place_python[i] is the python that owns it, if known.
# A place reached again through another path (a symbolic link) counts once, under its first path.
places=()
place_real=()
place_site=()
place_from=()
place_python=()

add_place() { # DIR SITE(0|1) FROM [PYTHON]
	local dir=$1 i real
	[[ -d $dir ]] || return 0
	dir=${dir%/}
	real=$(readlink -f "$dir" || echo "$dir")
	for i in "${!places[@]}"; do
		if [[ ${place_real[i]} == "$real" ]]; then
			[[ -n ${place_python[i]} ]] || place_python[i]=${4:-}
			return 0
		fi
	done
	places+=("$dir")
	place_real+=("$real")
	place_site+=("$2")
	place_from+=("$3")
	place_python+=("${4:-}")
}

# add_python PY FROM: the site-packages that python reports (without importing anything but site).
add_python() {
	local py=$1 d
	[[ -f $py && -x $py ]] || return 0
	while IFS= read -r d; do
		add_place "$d" 1 "$2" "$py"
	done < <(timeout 10 "$py" - 2>/dev/null <<'EOF' || true
import importlib.util, os, site, sys
dirs = []
try:
    dirs += site.getsitepackages()
except AttributeError:  # old virtualenv's site module
    pass
try:
    dirs.append(site.getusersitepackages())
except AttributeError:
    pass
dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
spec = importlib.util.find_spec("nvidia")  # a namespace package: its parents are site directories
if spec and spec.submodule_search_locations:
    dirs += [os.path.dirname(p) for p in spec.submodule_search_locations]
print("\n".join(d for d in dirs if os.path.isdir(d)))
EOF
	)
}

# add_prefix DIR FROM: a Python installation (venv, conda, ~/.local): its site-packages by name, a conda
# prefix's lib/, then whatever its own python reports.
add_prefix() {
	local p=${1%/} from=$2 py='' d
	[[ -d $p ]] || return 0
	for d in "$p"/bin/python3 "$p"/bin/python; do
		if [[ -f $d && -x $d ]]; then
			py=$d
			break
		fi
	done
	for d in "$p"/lib/python3*/site-packages "$p"/lib64/python3*/site-packages "$p"/lib/python3*/dist-packages \
		"$p"/local/lib/python3*/dist-packages; do
		add_place "$d" 1 "$from" "$py"
	done
	[[ -d $p/conda-meta ]] && add_place "$p/lib" 0 "$from"
	[[ -z $py ]] || add_python "$py" "$from"
}

is_prefix() { [[ -f $1/pyvenv.cfg || -d $1/conda-meta ]]; }

# The loader's cache: "soname path" lines for this machine's architecture.
ldconfig_bin=${RESNET_GPU_LDCONFIG-/sbin/ldconfig}
ldcache=
if [[ -n $ldconfig_bin ]]; then
	arch_tag=
	[[ ${HOSTTYPE:-} == x86_64 ]] && arch_tag=x86-64
	ldcache=$("$ldconfig_bin" -p 2>/dev/null |
		awk -v tag="$arch_tag" '$2 ~ /^\(/ && (tag == "" || index($0, tag)) && $(NF-1) == "=>" {print $1, $NF}' || true)
fi

# loader_path SONAME: where the loader finds SONAME without LD_LIBRARY_PATH, per its cache.
loader_path() { awk -v so="$1" '$1 == so {print $2; exit}' <<<"$ldcache"; }

system_dirs() {
	local arch=${HOSTTYPE:-x86_64} d
	if [[ -n ${RESNET_GPU_SYSTEM_DIRS+set} ]]; then
		tr ':' '\n' <<<"$RESNET_GPU_SYSTEM_DIRS"
		return 0
	fi
	for d in /usr/lib/"$arch"-linux-gnu /lib/"$arch"-linux-gnu /usr/lib64 /usr/lib /usr/local/cuda/lib64 \
		/usr/local/cuda-*/lib64 /usr/local/cuda/targets/"$arch"-linux/lib /usr/local/nvidia/lib64 /usr/lib/wsl/lib; do
		echo "$d"
	done
}

extra_dirs=()
[[ -z ${RESNET_GPU_LIB_DIRS:-} ]] || IFS=: read -r -a extra_dirs <<<"$RESNET_GPU_LIB_DIRS"
for d in ${extra_dirs[@]+"${extra_dirs[@]}"}; do add_place "$d" 0 RESNET_GPU_LIB_DIRS; done
[[ -z ${RESNET_PYTHON:-} ]] || add_python "$(command -v "$RESNET_PYTHON" || echo "$RESNET_PYTHON")" RESNET_PYTHON
[[ -z ${VIRTUAL_ENV:-} ]] || add_prefix "$VIRTUAL_ENV" VIRTUAL_ENV
[[ -z ${CONDA_PREFIX:-} ]] || add_prefix "$CONDA_PREFIX" CONDA_PREFIX
IFS=: read -r -a path_dirs <<<"${PATH:-}"
for d in ${path_dirs[@]+"${path_dirs[@]}"}; do
	for py in "$d"/python3 "$d"/python; do add_python "$py" "$py on PATH"; done
done
IFS=: read -r -a opt_roots <<<"${RESNET_GPU_OPT_ROOTS-/opt}"
for root in ${opt_roots[@]+"${opt_roots[@]}"}; do
	for d in "$root"/*/; do
		d=${d%/}
		is_prefix "$d" && add_prefix "$d" "$root/*"
		for v in "$d"/.venv "$d"/venv; do add_prefix "$v" "$root/*/${v##*/}"; done
	done
done
if [[ -n ${HOME:-} ]]; then
	add_prefix "$HOME/.venv" "\$HOME/.venv"
	add_prefix "$HOME/.local" "\$HOME/.local"
fi
while read -r _ p; do add_place "${p%/*}" 0 "ldconfig -p"; done <<<"$ldcache"
while IFS= read -r d; do
	for g in $d; do add_place "$g" 0 "system"; done # $d may be a pattern: /usr/local/cuda-*/lib64
done < <(system_dirs)

# libdirs[j] is a directory libraries are looked for in, and libdir_place[j] the place it belongs to.
libdirs=()
libdir_place=()
for i in "${!places[@]}"; do
	if [[ ${place_site[i]} == 1 ]]; then
		for d in "${places[i]}"/nvidia/*/lib "${places[i]}"/torch/lib; do
			libdirs+=("$d")
			libdir_place+=("$i")
		done
	else
		libdirs+=("${places[i]}")
		libdir_place+=("$i")
	fi
done

# copies SONAME [PLACE]: every copy of SONAME, in search order (in PLACE only, when given).
copies() {
	local j
	for j in "${!libdirs[@]}"; do
		[[ -z ${2:-} || ${libdir_place[j]} == "$2" ]] || continue
		[[ -e ${libdirs[j]}/$1 ]] && echo "${libdirs[j]}/$1"
	done
	return 0
}

# first_copy SONAME [PLACE]: the first of them (no pipe into head: its early exit would fail the pipeline).
first_copy() {
	local j
	for j in "${!libdirs[@]}"; do
		[[ -z ${2:-} || ${libdir_place[j]} == "$2" ]] || continue
		if [[ -e ${libdirs[j]}/$1 ]]; then
			echo "${libdirs[j]}/$1"
			return 0
		fi
	done
	return 0
}

# ---- Versions ----------------------------------------------------------------------------------------
# lib_version PATH: sets version and package: the wheel whose RECORD lists PATH, else the version in the
# name PATH resolves to (libcudnn.so.9.13.0), else the soname's.
lib_version() {
	local path=$1 site='' rel rec real meta
	version='' package=''
	case $path in
	*/site-packages/*) site=${path%%/site-packages/*}/site-packages ;;
	*/dist-packages/*) site=${path%%/dist-packages/*}/dist-packages ;;
	esac
	if [[ -n $site ]]; then
		rel=${path#"$site"/}
		rec=$(grep -l -e "^${rel//./\\.}," "$site"/*.dist-info/RECORD 2>/dev/null || true)
		rec=${rec%%$'\n'*}
		if [[ -n $rec ]]; then
			meta=${rec%/RECORD}/METADATA
			package=$(sed -n 's/^Name: *//p' "$meta" 2>/dev/null || true)
			version=$(sed -n 's/^Version: *//p' "$meta" 2>/dev/null || true)
			package=${package%%$'\n'*}
			version=${version%%$'\n'*}
			[[ -z $version ]] || return 0
		fi
	fi
	real=$(readlink -f "$path" 2>/dev/null || echo "$path")
	real=${real##*/}
	if [[ $real == *.so.* ]]; then
		version=${real#*.so.}
	fi
}

# ---- Choosing ----------------------------------------------------------------------------------------
# The required set, from one place when one holds it all: CUDA 13 builds, else CUDA 12 ones.
set_place=
set_major=
for major in 13 12; do
	for i in "${!places[@]}"; do
		if [[ -n $(first_copy libcudnn.so.9 "$i") && -n $(first_copy "libcublas.so.$major" "$i") &&
			-n $(first_copy "libcublasLt.so.$major" "$i") ]]; then
			set_place=$i
			set_major=$major
			break 2
		fi
	done
done

missing=()
ld_dirs=()
lib_json=()
declare -A lib_package=()

# use_dir PATH SONAME: PATH's directory goes on LD_LIBRARY_PATH unless the loader finds PATH by itself.
use_dir() {
	local d=${1%/*} x
	[[ $(loader_path "$2") == "$1" ]] && return 0
	for x in ${ld_dirs[@]+"${ld_dirs[@]}"}; do [[ $x == "$d" ]] && return 0; done
	ld_dirs+=("$d")
}

# record KEY LABEL REQUIRED PATH SONAME [OTHERS...]: reports one library (PATH empty: not found).
record() {
	local key=$1 label=$2 required=$3 path=$4 so=$5 desc
	shift 5
	version='' package=''
	if [[ -n $path ]]; then
		lib_version "$path"
		desc="${package:+$package }${version:-version unknown}"
		(($# == 0)) || desc+="; $# other cop$( (($# == 1)) && echo y || echo ies)"
		say "$(printf '%-9s' "$label") $path ($desc)"
	fi
	lib_package[$key]=$package
	lib_json+=("$(json_str "$key"): {\"label\": $(json_str "$label"), \"required\": $required, \"found\": $([[ -n $path ]] && echo true || echo false), \"soname\": $(json_str "$so"), \"path\": $(json_str "$path"), \"version\": $(json_str "$version"), \"package\": $(json_str "$package"), \"other_copies\": $(json_strs "$@")}")
}

# pick KEY LABEL REQUIRED SONAME...: the copy of the first SONAME found, from the set's place when it has
# one, else the first in search order; reports it and puts its directory on LD_LIBRARY_PATH.
pick() {
	local key=$1 label=$2 required=$3 so path=
	local -a all
	shift 3
	for so in "$@"; do
		[[ -z $set_place ]] || path=$(first_copy "$so" "$set_place")
		[[ -n $path ]] || path=$(first_copy "$so")
		[[ -z $path ]] || break
	done
	if [[ -z $path ]]; then
		record "$key" "$label" "$required" "" "$1"
		return 1
	fi
	mapfile -t all < <(copies "$so" | grep -v -x -F -e "$path")
	record "$key" "$label" "$required" "$path" "$so" ${all[@]+"${all[@]}"}
	[[ $so == "$1" ]] || warn "$label: found $so, not $1, which the CUDA build is compiled against"
	use_dir "$path" "$so"
}

pick cudnn cuDNN true libcudnn.so.9 || missing+=("cuDNN (libcudnn.so.9)")
pick cublas cuBLAS true libcublas.so.13 libcublas.so.12 || missing+=("cuBLAS (libcublas.so.13)")
pick cublaslt cuBLASLt true libcublasLt.so.13 libcublasLt.so.12 || missing+=("cuBLASLt (libcublasLt.so.13)")
if [[ -n $set_place ]]; then
	say "set:      cuDNN, cuBLAS and cuBLASLt (CUDA $set_major) all from ${places[set_place]} (${place_from[set_place]})"
elif ((${#missing[@]} == 0)); then
	warn "no one place holds cuDNN, cuBLAS and cuBLASLt together; each is the first copy found, which may not match"
fi
[[ $set_major != 12 ]] || warn "only CUDA 12 builds of cuBLAS found; the binary is built against CUDA 13 (libcublas.so.13)"
if [[ ${lib_package[cudnn]} == *-cu12 && $set_major != 12 ]]; then
	warn "cuDNN is the CUDA 12 build (${lib_package[cudnn]}) while cuBLAS is CUDA 13's"
fi
# cuDNN loads NVRTC itself for its runtime-compiled engines, through the search path only; most
# convolutions work without it.
pick nvrtc NVRTC false libnvrtc.so.13 libnvrtc.so.12 ||
	warn "libnvrtc.so.13 not found; cuDNN's runtime-compiled engines will be unavailable"
pick nccl NCCL false libnccl.so.2 || say "NCCL:     libnccl.so.2 not found (only data-parallel training will need it)"

# zlib: cuDNN 9's sub-libraries (libcudnn_graph, the engines) need libz.so.1 and fail to load without it.
libz=$(loader_path libz.so.1)
[[ -n $libz ]] || libz=$(first_copy libz.so.1)
record libz zlib true "$libz" libz.so.1
if [[ -n $libz ]]; then
	use_dir "$libz" libz.so.1
else
	missing+=("zlib (libz.so.1): cuDNN 9 cannot load its engines without it; install zlib (apt-get install zlib1g) or put a directory that holds libz.so.1 in RESNET_GPU_LIB_DIRS")
fi

# The driver comes from the system, never from Python: the extra directories, the loader's cache, the
# system directories.
driver=
for d in ${extra_dirs[@]+"${extra_dirs[@]}"}; do
	[[ -e $d/libcuda.so.1 ]] && driver=$d/libcuda.so.1 && break
done
[[ -n $driver ]] || driver=$(loader_path libcuda.so.1)
if [[ -z $driver ]]; then
	while IFS= read -r d; do
		for g in $d; do
			[[ -e $g/libcuda.so.1 ]] && driver=$g/libcuda.so.1 && break 2
		done
	done < <(system_dirs)
fi
record driver driver true "$driver" libcuda.so.1
if [[ -n $driver ]]; then
	use_dir "$driver" libcuda.so.1
else
	missing+=("the NVIDIA driver's libcuda.so.1 (is this a GPU machine? try nvidia-smi)")
fi
driver_cuda=
if command -v nvidia-smi >/dev/null 2>&1; then
	driver_cuda=$(timeout 20 nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1 || true)
	[[ -z $driver_cuda ]] || say "driver supports CUDA $driver_cuda"
	if [[ -n $driver_cuda && ${driver_cuda%%.*} -lt 13 ]]; then
		warn "the driver supports CUDA $driver_cuda only; the CUDA build needs a driver for CUDA 13"
	fi
fi

# ---- A python with torch, for the PyTorch peer benchmark -----------------------------------------------
torch_python=${RESNET_TORCH_PYTHON:-}
torch_site=
torch_version=
if [[ -z $torch_python ]]; then
	for i in ${set_place:+"$set_place"} "${!places[@]}"; do
		if [[ ${place_site[i]} == 1 && -n ${place_python[i]} && -f ${places[i]}/torch/__init__.py ]]; then
			torch_python=${place_python[i]}
			torch_site=${places[i]}
			break
		fi
	done
fi
if [[ -n $torch_python ]]; then
	if [[ -n $torch_site ]]; then
		meta=("$torch_site"/torch-*.dist-info/METADATA)
		((${#meta[@]} == 0)) || torch_version=$(sed -n 's/^Version: *//p' "${meta[0]}" | head -n 1)
		[[ -f $torch_site/torchvision/__init__.py ]] ||
			warn "torchvision is not installed next to torch in $torch_site; bench_pytorch.py needs it for resnet18..152"
	fi
	say "torch:    $torch_python${torch_version:+ (torch $torch_version)}"
else
	warn "no python with torch found; the PyTorch peer benchmark (scripts/bench_pytorch.py) cannot run: set RESNET_TORCH_PYTHON"
fi

ld_path=$(
	IFS=:
	echo "${ld_dirs[*]-}"
)

if [[ -n $json_file ]]; then
	searched=()
	for i in "${!places[@]}"; do searched+=("${places[i]} (${place_from[i]})"); done
	{
		echo "{"
		echo "  \"ok\": $( ((${#missing[@]} == 0)) && echo true || echo false),"
		echo "  \"missing\": $(json_strs ${missing[@]+"${missing[@]}"}),"
		echo "  \"warnings\": $(json_strs ${warnings[@]+"${warnings[@]}"}),"
		echo "  \"set_from\": $(json_str "${set_place:+${places[set_place]}}"),"
		echo "  \"set_cuda_major\": $(json_num "$set_major"),"
		echo "  \"driver_cuda\": $(json_str "$driver_cuda"),"
		echo "  \"ld_library_path\": $(json_str "$ld_path"),"
		echo "  \"torch_python\": $(json_str "$torch_python"),"
		echo "  \"torch_version\": $(json_str "$torch_version"),"
		echo "  \"libraries\": {"
		sep=
		for l in "${lib_json[@]}"; do
			printf '%s    %s' "$sep" "$l"
			sep=$',\n'
		done
		echo
		echo "  },"
		echo "  \"searched\": $(json_strs ${searched[@]+"${searched[@]}"})"
		echo "}"
	} >"$json_file.tmp"
	mv "$json_file.tmp" "$json_file"
fi

if ((${#missing[@]} > 0)); then
	say "error: not found:"
	for m in "${missing[@]}"; do say "  $m"; done
	say "searched:"
	for i in "${!places[@]}"; do say "  ${places[i]} (${place_from[i]})"; done
	say "set RESNET_GPU_LIB_DIRS=dir1:dir2 to the directories that hold them, or RESNET_PYTHON to the python whose packages have them"
	exit 1
fi

say "LD_LIBRARY_PATH += ${ld_path:-(nothing: the loader finds them all)}"
if [[ -n $ld_path ]]; then
	# The caller's LD_LIBRARY_PATH is expanded where the line is evaluated, not here.
	# shellcheck disable=SC2016
	printf 'export LD_LIBRARY_PATH=%q"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n' "$ld_path"
fi
[[ -z $torch_python ]] || printf 'export RESNET_TORCH_PYTHON=%q\n' "$torch_python"
