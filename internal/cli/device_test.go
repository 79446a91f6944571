package cli

import (
	"strings"
	"testing"
)

// --device auto says once, on stderr, why it is not using the GPU.
func TestAutoDeviceSaysWhyOnce(t *testing.T) {
	var out, errOut strings.Builder
	e := &env{stdout: &out, stderr: &errOut}
	var name string
	for range 2 {
		d, err := openDevice(e, "auto", false)
		if err != nil {
			t.Fatal(err)
		}
		name = d.Name()
	}
	msg := errOut.String()
	switch {
	case name == "cuda" && msg != "":
		t.Errorf("auto opened the GPU and printed %q", msg)
	case name == "cpu" && (!strings.HasPrefix(msg, "resnet: device auto: using the CPU (cuda: ") ||
		strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, ")\n")):
		t.Errorf("auto fell back to the CPU and printed %q; want one line giving the CUDA reason", msg)
	}
	if out.Len() != 0 {
		t.Errorf("stdout %q", out.String())
	}
	if _, err := openDevice(e, "cpu", false); err != nil || errOut.String() != msg {
		t.Errorf("--device cpu printed %q, %v", strings.TrimPrefix(errOut.String(), msg), err)
	}
}
