//go:build !cuda

package cli

import (
	"strings"
	"testing"
)

// --device auto says once, on stderr, why it is not using the GPU (this test binary has no CUDA backend).
func TestAutoDeviceSaysWhyOnce(t *testing.T) {
	var out, errOut strings.Builder
	e := &env{stdout: &out, stderr: &errOut}
	for range 2 {
		d, err := openDevice(e, "auto", false)
		if err != nil || d.Name() != "cpu" {
			t.Fatalf("openDevice(auto) = %v, %v; want the CPU", d, err)
		}
	}
	want := "resnet: device auto: using the CPU (cuda: this resnet binary was built without CUDA support (build it with 'make cuda'))\n"
	if errOut.String() != want || out.Len() != 0 {
		t.Errorf("stderr %q, stdout %q; want stderr %q", errOut.String(), out.String(), want)
	}
	if _, err := openDevice(e, "cpu", false); err != nil || errOut.String() != want {
		t.Errorf("--device cpu printed %q, %v", errOut.String(), err)
	}
}
