//go:build !cuda

package cuda

import (
	"testing"

	"resnet/internal/backend"
)

func TestOpenWithoutCUDASupport(t *testing.T) {
	d, err := backend.Open("cuda", backend.Options{})
	if d != nil || err == nil {
		t.Fatalf("Open(cuda) = %v, %v; want an error", d, err)
	}
	const want = "cuda: this resnet binary was built without CUDA support (build it with 'make cuda')"
	if err.Error() != want {
		t.Fatalf("Open(cuda) error %q, want %q", err, want)
	}
}
