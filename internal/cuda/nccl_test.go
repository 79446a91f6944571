//go:build cuda

package cuda

// What of the NCCL layer needs no GPU: the version codes, the error names, the message of a missing
// library, and (where libnccl.so.2 is on the library path) that the library loads with every entry point.

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// envRequireNCCL makes TestNCCLLoads fail instead of skipping when libnccl.so.2 does not load.
const envRequireNCCL = "RESNET_REQUIRE_NCCL"

func TestNCCLVersionString(t *testing.T) {
	for code, want := range map[int]string{
		2804:  "2.8.4",  // before 2.9: 1000*major + 100*minor + patch
		2708:  "2.7.8",  //
		20900: "2.9.0",  // from 2.9 on: 10000*major + 100*minor + patch
		22707: "2.27.7", // the headers the build uses
		23006: "2.30.6",
	} {
		if got := ncclVersionString(code); got != want {
			t.Errorf("ncclVersionString(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestNCCLErrorName(t *testing.T) {
	for _, c := range []struct {
		r      int
		detail []string
		want   string
	}{
		{4, nil, "ncclInvalidArgument"},
		{2, []string{"unhandled system error (run with NCCL_DEBUG=INFO for details)"},
			"ncclSystemError (unhandled system error (run with NCCL_DEBUG=INFO for details))"},
		{6, []string{"remote process exited or there was a network error", "socket recv failed"},
			"ncclRemoteError (remote process exited or there was a network error; socket recv failed)"},
		{42, nil, "ncclResult_t(42)"},
	} {
		if got := ncclErrorName(c.r, c.detail); got != c.want {
			t.Errorf("ncclErrorName(%d, %q) = %q, want %q", c.r, c.detail, got, c.want)
		}
	}
}

// A machine without NCCL gets told what is missing and how to get it.
func TestNCCLMissingLibrarySaysHowToGetIt(t *testing.T) {
	err := openNCCL("libnccl-absent.so.2")
	if err == nil {
		t.Fatal("opening a library that does not exist succeeded")
	}
	const want = "cuda: libnccl-absent.so.2 not found, which collectives between GPUs need: install it with " +
		"'pip install nvidia-nccl-cu13' (and put its nvidia/nccl/lib on LD_LIBRARY_PATH) or the system's " +
		"libnccl2 package; on the GPU machine source scripts/gpu-env.sh: "
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error\n%q\nwant it to start with\n%q", err, want)
	}
}

// Where libnccl.so.2 loads (the toolchain's wheel is on the library path in `make cuda-emu-test`), every
// entry point the device calls is there, the version is a 2.x one, and a unique id can be made: that needs
// no GPU, only the rendezvous listener NCCL starts in this process.
func TestNCCLLoads(t *testing.T) {
	if err := loadNCCL(); err != nil {
		if os.Getenv(envRequireNCCL) == "1" {
			t.Fatalf("%s=1 but NCCL does not load: %v", envRequireNCCL, err)
		}
		t.Skipf("NCCL does not load (set LD_LIBRARY_PATH to its lib folder): %v", err)
	}
	v := loadedNCCLVersion()
	if !strings.HasPrefix(v, "2.") {
		t.Fatalf("NCCL version %q, want 2.x", v)
	}
	t.Logf("NCCL %s", v)
	id, err := (&driver{}).collectiveID()
	if err != nil {
		t.Fatalf("ncclGetUniqueId: %v", err)
	}
	if len(id) != collectiveIDBytes || !slices.ContainsFunc(id, func(b byte) bool { return b != 0 }) {
		t.Fatalf("unique id %x: want %d bytes, not all zero", id, collectiveIDBytes)
	}
}
