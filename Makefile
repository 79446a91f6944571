# resnet build and test entry points. `make demo` is the first thing to run on a new machine: it needs only Go.

GO      ?= go
BIN     := bin/resnet
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X resnet/internal/cli.version=$(VERSION)
DEMO_OUT ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: all build test vet fmt-check demo bench clean

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

# CPU training throughput of the benchmark models (see docs/benchmarks.md).
bench: build
	$(BIN) bench --device cpu --model cifar_resnet20 --batch 128 --steps 5
	$(GO) test -run '^$$' -bench . -benchtime 3x ./internal/cpu/

clean:
	rm -rf bin
