//go:build !cuda

package cuda

import (
	"errors"

	"resnet/internal/backend"
)

// errNoCUDA is what opening the "cuda" device returns in a binary built without the cuda tag.
var errNoCUDA = errors.New("cuda: this resnet binary was built without CUDA support (build it with 'make cuda')")

func init() {
	backend.Register("cuda", func(backend.Options) (backend.Device, error) { return nil, errNoCUDA })
}
