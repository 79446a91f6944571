package sysmem

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMulAndAddSaturate(t *testing.T) {
	for _, tc := range []struct {
		got, want int64
	}{
		{Mul(2, 3, 4), 24},
		{Mul(100000000, 64, 112, 112, 4), 321126400000000},
		{Mul(1<<31, 1<<31, 1<<2), Saturated},
		{Mul(1<<31, 1<<31, 0), 0},
		{Mul(5, -1), 0},
		{Add(1, 2, -7), 3},
		{Add(Saturated-1, 2), Saturated},
		{Add(Mul(1<<40, 1<<40), 1), Saturated},
	} {
		if tc.got != tc.want {
			t.Errorf("got %d, want %d", tc.got, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for b, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 24 << 30: "24.0 GiB",
		10225593624576: "9.3 TiB", 1<<40 - 1: "1.0 TiB", Saturated: "8.0 EiB",
	} {
		if got := Format(b); got != want {
			t.Errorf("Format(%d) = %q, want %q", b, got, want)
		}
	}
}

// fakeSystem writes a /proc/self/cgroup, a cgroup tree and a /proc/meminfo under a temporary folder;
// files maps paths relative to the cgroup root to their contents.
func fakeSystem(t *testing.T, cgroup, meminfo string, files map[string]string) Files {
	t.Helper()
	dir := t.TempDir()
	f := Files{Cgroup: filepath.Join(dir, "cgroup"), Root: filepath.Join(dir, "sys"), Meminfo: filepath.Join(dir, "meminfo")}
	write := func(path, text string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if cgroup != "" {
		write(f.Cgroup, cgroup)
	}
	if meminfo != "" {
		write(f.Meminfo, meminfo)
	}
	for p, text := range files {
		write(filepath.Join(f.Root, p), text)
	}
	return f
}

const meminfo24G = "MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:   24000000 kB\n"

func TestHostLimit(t *testing.T) {
	for _, tc := range []struct {
		name            string
		cgroup, meminfo string
		files           map[string]string
		want            Limit
	}{
		{"meminfo only", "", meminfo24G, nil, Limit{24000000 << 10, "MemAvailable"}},
		{"v2 limit of the process's cgroup", "0::/user.slice/job\n", meminfo24G,
			map[string]string{"user.slice/job/memory.max": "8589934592\n", "user.slice/memory.max": "max\n"},
			Limit{8 << 30, "cgroup memory.max"}},
		{"v2 limit of a parent", "0::/user.slice/job\n", meminfo24G,
			map[string]string{"user.slice/job/memory.max": "max\n", "user.slice/memory.max": "4294967296\n"},
			Limit{4 << 30, "cgroup memory.max"}},
		{"v2 unlimited", "0::/job\n", meminfo24G, map[string]string{"job/memory.max": "max\n"},
			Limit{24000000 << 10, "MemAvailable"}},
		{"v2 above MemAvailable", "0::/job\n", meminfo24G, map[string]string{"job/memory.max": "68719476736\n"},
			Limit{24000000 << 10, "MemAvailable"}},
		{"v2 hybrid, under unified", "1:memory:/\n0::/job\n", meminfo24G,
			map[string]string{"unified/job/memory.max": "2147483648\n"}, Limit{2 << 30, "cgroup memory.max"}},
		{"v1", "5:cpu:/\n4:memory,hugetlb:/docker/abc\n0::/\n", meminfo24G,
			map[string]string{"memory/docker/abc/memory.limit_in_bytes": "3221225472\n"},
			Limit{3 << 30, "cgroup memory.limit_in_bytes"}},
		// In a container the host's cgroup path does not exist; the container's cgroup is the mount.
		{"v1 inside a container", "4:memory:/docker/abc\n", meminfo24G,
			map[string]string{"memory/memory.limit_in_bytes": "1073741824\n"},
			Limit{1 << 30, "cgroup memory.limit_in_bytes"}},
		{"v1 unlimited", "4:memory:/\n", meminfo24G,
			map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"},
			Limit{24000000 << 10, "MemAvailable"}},
		{"malformed files count as absent", "garbage\n0::/job\n", "MemAvailable: lots\n",
			map[string]string{"job/memory.max": "a lot\n"}, Limit{}},
		{"nothing to read", "", "", nil, Limit{}},
	} {
		f := fakeSystem(t, tc.cgroup, tc.meminfo, tc.files)
		if got := f.HostLimit(); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestRefuse(t *testing.T) {
	need := Need{{Name: "activations", Bytes: 6 << 30}, {Name: "parameters", Bytes: 1 << 30}, {Name: "data loaders", Bytes: 2 << 30, Host: true}}
	host := Limit{Bytes: 8 << 30, Source: "MemAvailable"}
	e := Budget{Host: host}.Refuse(need)
	if e == nil {
		t.Fatal("9 GiB fit in 8 GiB")
	}
	e.Setting, e.Value, e.What, e.Advice = "train.batch_size", "512", "a training step of resnet50 at 224x224", "lower train.batch_size to at most ~440"
	want := "train.batch_size 512 needs about 9.0 GiB for a training step of resnet50 at 224x224 (activations 6.0 GiB, parameters 1.0 GiB, data loaders 2.0 GiB); the limit is 8.0 GiB (MemAvailable); lower train.batch_size to at most ~440"
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e, want)
	}
	// On a GPU the network's parts count against its memory, the host parts against the host's.
	gpu := Limit{Bytes: 6 << 30, Source: "free GPU memory"}
	e = Budget{Host: host, Device: &gpu}.Refuse(need)
	if e == nil || !e.OnDevice || e.Need.Total() != 7<<30 || e.Limit != gpu {
		t.Errorf("GPU: %+v", e)
	}
	gpu.Bytes = 7 << 30
	if e := (Budget{Host: host, Device: &gpu}).Refuse(need); e != nil {
		t.Errorf("7 GiB on a 7 GiB GPU and 2 GiB on an 8 GiB host refused: %v", e)
	}
	host.Bytes = 1 << 30
	if e := (Budget{Host: host, Device: &gpu}).Refuse(need); e == nil || e.OnDevice || e.Need.Total() != 2<<30 {
		t.Errorf("host part over the host limit: %+v", e)
	}
	if !(Budget{}).Fits(Need{{Name: "activations", Bytes: Saturated}}) {
		t.Error("an unknown limit refused")
	}
	e = Budget{Host: host}.Refuse(Need{{Name: "activations", Bytes: Saturated}})
	e.Setting, e.Value, e.What = "dataset.image_size", "1000000000", "a training step"
	if got := e.Error(); got != "dataset.image_size 1000000000 needs more than 8.0 EiB for a training step (activations 8.0 EiB); the limit is 1.0 GiB (MemAvailable)" {
		t.Errorf("saturated: %s", got)
	}
}

func TestLargestFittingAndApprox(t *testing.T) {
	for _, tc := range []struct{ hi, limit, want int }{{100, 37, 37}, {100, 500, 100}, {100, 0, 0}, {1, 1, 1}} {
		if got := LargestFitting(tc.hi, func(n int) bool { return n <= tc.limit }); got != tc.want {
			t.Errorf("LargestFitting(%d, n <= %d) = %d, want %d", tc.hi, tc.limit, got, tc.want)
		}
	}
	for n, want := range map[int]string{0: "0", 37: "37", 99: "99", 100: "~100", 2437: "~2400", 123456: "~120000"} {
		if got := Approx(n); got != want {
			t.Errorf("Approx(%d) = %q, want %q", n, got, want)
		}
	}
	for _, tc := range []struct {
		n, m int
		want string
	}{{2437, 7, "~2394"}, {2437, 2, "~2400"}, {97, 3, "96"}, {4096, 2, "~4000"}, {150, 128, "~128"}} {
		if got := ApproxMultiple(tc.n, tc.m); got != tc.want {
			t.Errorf("ApproxMultiple(%d, %d) = %q, want %q", tc.n, tc.m, got, tc.want)
		}
	}
}

func TestCheckSetting(t *testing.T) {
	b := Budget{Host: Limit{Bytes: 1000, Source: "MemAvailable"}}
	need := func(v int) (Need, error) { return Need{{Name: "batches", Bytes: int64(100 + 7*v)}}, nil }
	if e, err := b.CheckSetting("--batch-size", 128, "a step", need); e != nil || err != nil {
		t.Errorf("996 bytes in 1000: %v, %v", e, err)
	}
	e, err := b.CheckSetting("--batch-size", 1000, "a step", need)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.Error(), "--batch-size 1000 needs about 6.9 KiB for a step (batches 6.9 KiB); the limit is 1000 B (MemAvailable); lower --batch-size to at most ~120"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	e, _ = b.CheckSetting("--batch-size", 1000, "a step", func(v int) (Need, error) { return Need{{Name: "net", Bytes: 2000}}, nil })
	if e == nil || e.Advice != "it does not fit even at 1" {
		t.Errorf("nothing fits: %+v", e)
	}
}
