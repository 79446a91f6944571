package train

import (
	"fmt"

	"resnet/internal/config"
)

func imagenetData(c config.DatasetConfig) (*Data, error) {
	return nil, fmt.Errorf("dataset imagenet: not available yet")
}
