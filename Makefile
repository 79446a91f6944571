# resnet build and test entry points. `make demo` is the first thing to run on a new machine: it needs only Go.

GO      ?= go
BIN     := bin/resnet
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X resnet/internal/cli.version=$(VERSION)
DEMO_OUT ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: all build test vet fmt-check demo compare-demo bench fuzz clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/resnet

# The whole CPU test suite: formatting, vet, unit and end-to-end tests.
test: fmt-check vet
	$(GO) test -count=1 ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# Train the demo config (a small CIFAR-style ResNet on the built-in synthetic data set) on the CPU.
demo: build
	$(BIN) train --config demo.yaml --out $(DEMO_OUT)
	$(BIN) eval --checkpoint $(DEMO_OUT)

# The degradation experiment of He et al. 2015 (Figure 6) on the built-in synthetic data, on the CPU:
# plain-20/56 and ResNet-20/56 trained with one recipe (configs/compare_demo.yaml). Curves and summary go
# to docs/compare-demo/, the runs to runs/compare-demo/ (an interrupted demo resumes where it stopped).
COMPARE_DEMO_OUT  ?= docs/compare-demo
COMPARE_DEMO_RUNS ?= runs/compare-demo
compare-demo: build
	$(BIN) compare --base compare_demo cifar_plain20 cifar_plain56 cifar_resnet20 cifar_resnet56 \
		--out $(COMPARE_DEMO_OUT) --runs $(COMPARE_DEMO_RUNS)

# CPU training throughput of the benchmark models (see docs/benchmarks.md).
bench: build
	$(BIN) bench --device cpu --model cifar_resnet20 --batch-size 128 --steps 5
	$(GO) test -run '^$$' -bench . -benchtime 3x ./internal/cpu/

# Fuzz the parsers of untrusted input for FUZZTIME each: the config loader (YAML + --set + environment), the
# safetensors reader, the JPEG decoder and image decoding. Their seed corpora run in `make test`.
FUZZTIME ?= 30s
FUZZ_TARGETS := FuzzLoad:./internal/config FuzzRead:./internal/safetensors FuzzDecode:./internal/jpeg \
                FuzzDecode:./internal/vision
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "go test -run '^$$' -fuzz '^$${t%%:*}$$' -fuzztime $(FUZZTIME) $${t#*:}"; \
	  $(GO) test -run '^$$' -fuzz "^$${t%%:*}\$$" -fuzztime $(FUZZTIME) "$${t#*:}"; \
	done

clean:
	rm -rf bin

# ---- CUDA build ---------------------------------------------------------------------------------------
# Needs no GPU: nvcc and the CUDA/cuBLAS/cuDNN/NCCL headers come from NVIDIA's PyPI wheels, installed once
# into ~/.cache/resnet by scripts/setup-cuda.sh (RESNET_CUDA_HOME=/usr/local/cuda uses an installed toolkit
# instead, as Dockerfile.cuda does). Each recipe sources scripts/cuda-env.sh, which installs on first use.
# The Go code only includes the headers and dlopens libcuda/libcublas/libcudnn at run time (libnccl at the
# first collective), so nothing is linked but -ldl. Run the results on a GPU machine with `make gpu-bundle`
# and scripts/gpu-check.sh.
CUDA_ENV       := . scripts/cuda-env.sh
CUDA_TAGS      ?= cuda
KERNELS_DIR    := kernels
KERNELS_CU     := $(sort $(wildcard $(KERNELS_DIR)/*.cu))
KERNELS_DEPS   := $(wildcard $(KERNELS_DIR)/*.cuh $(KERNELS_DIR)/*.h)
KERNELS_FATBIN := internal/cuda/kernels.fatbin
# All kernels are compiled as ONE translation unit, so one nvcc call gives one module with SASS and PTX
# that cuModuleLoadData loads whole (separate files would need -rdc and a device link, which drops the PTX).
# The unit is kernels/all.cu, which #includes every family file; without it, make generates one that
# includes every kernels/*.cu in name order. Either way, names at file scope must be unique across kernels/.
KERNELS_MAIN   := $(KERNELS_DIR)/all.cu
KERNELS_UNIT   := $(if $(wildcard $(KERNELS_MAIN)),$(KERNELS_MAIN),bin/kernels/kernels_all.cu)
# No --use_fast_math: it flushes subnormals to zero and approximates division and square root, which
# changes results (and breaks the kernels' bit-for-bit claims). The math flags below are nvcc's defaults,
# spelt out because the kernels depend on them; -fmad=true contracts a*b+c into one FMA, which is
# deterministic and the same in the fused and unfused paths (docs/decisions/0005-cuda-determinism.md).
NVCCFLAGS      ?= -O3 -std=c++17 -ftz=false -prec-div=true -prec-sqrt=true -fmad=true
NVCC_GENCODE   ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
                  -gencode arch=compute_90,code=compute_90
# Environment of every cgo step of the CUDA build (the variables come from scripts/cuda-env.sh).
CUDA_GO_ENV    = CGO_ENABLED=1 CGO_LDFLAGS=-ldl \
                 CGO_CFLAGS="-O2 -g -I$$CUDA_INCLUDE_DIR -I$$CUBLAS_INCLUDE_DIR -I$$CUDNN_INCLUDE_DIR -I$$NCCL_INCLUDE_DIR"
GPU_TESTS_DIR  := bin/gpu-tests
# Packages to build GPU test binaries for; empty: every package whose test files change under -tags cuda.
CUDA_TEST_PKGS ?=
GPU_BUNDLE     ?= dist/resnet-gpu.tar.gz
# The scripts that run on the GPU machine (scripts/gpu_check_test.go checks that they name no other).
GPU_BUNDLE_SCRIPTS := scripts/gpu-check.sh scripts/gpu-test.sh scripts/gpu-env.sh scripts/json.sh \
                      scripts/bench_pytorch.py scripts/ddp_compare.py
GPU_BUNDLE_MAX_MIB ?= 60

.PHONY: cuda-setup kernels cuda cuda-vet cuda-emu-test cuda-test-bin gpu-bundle cuda-clean

# The CUDA recipes source a bash script and use bash syntax.
cuda-setup kernels cuda cuda-vet cuda-emu-test cuda-test-bin gpu-bundle $(KERNELS_FATBIN): SHELL := /bin/bash

# Install (first time) and check the toolchain, printing the environment it provides.
cuda-setup:
	bash scripts/setup-cuda.sh --check

ifeq ($(KERNELS_CU),)
kernels:
	@echo "make kernels: no $(KERNELS_DIR)/*.cu files; nothing to compile"
else
kernels: $(KERNELS_FATBIN)
endif

$(KERNELS_FATBIN): $(KERNELS_CU) $(KERNELS_DEPS)
	@mkdir -p $(dir $@)
ifneq ($(KERNELS_UNIT),$(KERNELS_MAIN))
	@mkdir -p $(dir $(KERNELS_UNIT))
	@{ echo '// Generated by `make kernels` from $(KERNELS_DIR)/*.cu; do not edit.'; \
	  for f in $(notdir $(KERNELS_CU)); do echo "#include \"$$f\""; done; } > $(KERNELS_UNIT)
endif
	$(CUDA_ENV) && "$$NVCC" $(NVCCFLAGS) $(NVCC_GENCODE) -I$(KERNELS_DIR) -fatbin -o $@.tmp $(KERNELS_UNIT)
	@mv $@.tmp $@ && echo "make kernels: $@ ($$(wc -c < $@) bytes) from $(KERNELS_UNIT)"

# bin/resnet with the CUDA backend; it still starts (and runs on the CPU) where there is no GPU.
cuda: kernels
	$(CUDA_ENV) && $(CUDA_GO_ENV) \
	$(GO) build -trimpath -tags $(CUDA_TAGS) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/resnet

cuda-vet: kernels
	$(CUDA_ENV) && $(CUDA_GO_ENV) $(GO) vet -tags $(CUDA_TAGS) ./...

# The CUDA layer's tests on the CPU emulator of the GPU side (internal/cuda/emulator.go): the kernel
# sources compiled as C++ by g++, the real launchers, queue, allocator, fused and unfused paths; naive loops
# stand in for cuDNN and cuBLAS. No GPU needed; -short keeps the widest shapes to one mode (about 3 min).
# emulator.cpp #includes the kernel sources from kernels/, which Go's build cache does not track: the hash
# of those sources goes into CGO_CXXFLAGS, which it does, so an edited kernel always rebuilds the emulator.
# The toolchain's libcudnn.so.9 is on the library path, so that the cuDNN descriptors of every activation
# format are built and checked too (TestConvDescriptorsWithoutGPU: cuDNN's descriptor calls need no GPU),
# and its libnccl.so.2, so that NCCL's entry points are looked up (TestNCCLLoads).
KERNELS_SHA = $(shell cat $(KERNELS_CU) $(KERNELS_DEPS) | sha256sum | cut -c1-16)
cuda-emu-test: kernels
	$(CUDA_ENV) && $(CUDA_GO_ENV) CGO_CXXFLAGS="-O2 -g -DKERNEL_SOURCES_SHA=$(KERNELS_SHA)" \
	LD_LIBRARY_PATH="$$CUDNN_LIB_DIR:$$NCCL_LIB_DIR$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" RESNET_REQUIRE_CUDNN=1 RESNET_REQUIRE_NCCL=1 \
	$(GO) test -count=1 -short -tags '$(CUDA_TAGS) kernelemu' ./internal/cuda/

# One stripped test binary per package: $(GPU_TESTS_DIR)/internal-cuda.test for ./internal/cuda.
cuda-test-bin: kernels
	@$(CUDA_ENV) && export $(CUDA_GO_ENV) && \
	pkgs="$(CUDA_TEST_PKGS)"; \
	if [ -z "$$pkgs" ]; then \
	  tests() { $(GO) list -e "$$@" -f '{{.ImportPath}} {{.TestGoFiles}} {{.XTestGoFiles}}' ./... | sort; }; \
	  pkgs=$$(comm -13 <(tests) <(tests -tags=$(CUDA_TAGS)) | cut -d' ' -f1) || exit 1; \
	fi; \
	rm -rf $(GPU_TESTS_DIR) && mkdir -p $(GPU_TESTS_DIR); \
	if [ -z "$$pkgs" ]; then echo "make cuda-test-bin: no package has cuda-tagged tests; nothing to build"; exit 0; fi; \
	mod=$$($(GO) list -m) || exit 1; \
	for p in $$pkgs; do \
	  p=$$($(GO) list -e -tags=$(CUDA_TAGS) -f '{{.ImportPath}}' "$$p") || exit 1; \
	  rel=$${p#"$$mod"}; rel=$${rel#/}; name=$$(echo "$${rel:-root}" | tr / -); \
	  echo "go test -c -tags $(CUDA_TAGS) -o $(GPU_TESTS_DIR)/$$name.test $$p"; \
	  $(GO) test -c -tags $(CUDA_TAGS) -ldflags='-s -w' -o $(GPU_TESTS_DIR)/$$name.test "$$p" || exit 1; \
	done

# A tarball to carry to the GPU machine: tar xzf $(GPU_BUNDLE) && scripts/gpu-check.sh "$OUT"
gpu-bundle: cuda cuda-test-bin
	@mkdir -p $(dir $(GPU_BUNDLE))
	@tar --sort=name --owner=0 --group=0 --numeric-owner -cf - $(BIN) $(GPU_TESTS_DIR) \
	  $(GPU_BUNDLE_SCRIPTS) $(wildcard configs/*.yaml) | gzip -9 > $(GPU_BUNDLE).tmp
	@size=$$(wc -c < $(GPU_BUNDLE).tmp); \
	if [ "$$size" -gt $$(( $(GPU_BUNDLE_MAX_MIB) * 1048576 )) ]; then \
	  rm -f $(GPU_BUNDLE).tmp; \
	  echo "make gpu-bundle: $$((size / 1048576)) MiB is over the $(GPU_BUNDLE_MAX_MIB) MiB limit" >&2; exit 1; \
	fi; \
	mv $(GPU_BUNDLE).tmp $(GPU_BUNDLE); \
	echo "make gpu-bundle: $(GPU_BUNDLE) ($$(( (size + 1048575) / 1048576 )) MiB); on the GPU machine: tar xzf $(notdir $(GPU_BUNDLE)) && scripts/gpu-check.sh \"\$$OUT\""

cuda-clean:
	rm -rf $(KERNELS_FATBIN) $(KERNELS_FATBIN).tmp $(KERNELS_UNIT) $(GPU_TESTS_DIR) $(GPU_BUNDLE) $(GPU_BUNDLE).tmp
