package dataset

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The fake CIFAR files number their records with a global index g (0, 1, 2, ... through the training files
// in order; the test files start at cifarTestBase) and fill every byte from g, so any example can be
// recognised by its pixels and labels.
const cifarTestBase = 100

func cifarFakePixel(g, ch, p int) uint8 { return uint8(g*37 + ch*101 + p*7) }

func cifarFakeImage(g int) []uint8 {
	img := make([]uint8, cifarImage)
	for ch := range cifarChannels {
		for p := range cifarSize * cifarSize {
			img[ch*cifarSize*cifarSize+p] = cifarFakePixel(g, ch, p)
		}
	}
	return img
}

func cifar10FakeLabel(g int) int   { return (g*3 + 1) % 10 }
func cifar100FakeCoarse(g int) int { return (g * 7) % 20 }
func cifar100FakeFine(g int) int   { return (g*13 + 5) % 100 }

// writeCIFARFake writes records first..first+count-1 to path, each led by the label bytes labels(g).
func writeCIFARFake(t *testing.T, path string, first, count int, labels func(g int) []byte) {
	t.Helper()
	var b bytes.Buffer
	for g := first; g < first+count; g++ {
		b.Write(labels(g))
		b.Write(cifarFakeImage(g))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func cifar10FakeLabels(g int) []byte { return []byte{byte(cifar10FakeLabel(g))} }
func cifar100FakeLabels(g int) []byte {
	return []byte{byte(cifar100FakeCoarse(g)), byte(cifar100FakeFine(g))}
}

// cifar10FakeBatches are the record counts of data_batch_1..5.bin: uneven, so that ordering mistakes show.
var cifar10FakeBatches = [5]int{2, 3, 1, 4, 2}

const cifar10FakeTrain = 12

// writeCIFAR10Fake writes a CIFAR-10 set into dir: 12 training records over five files and test records
// cifarTestBase.. in test_batch.bin.
func writeCIFAR10Fake(t *testing.T, dir string, testCount int) {
	t.Helper()
	g := 0
	for k, n := range cifar10FakeBatches {
		writeCIFARFake(t, filepath.Join(dir, cifar10Layout.train[k]), g, n, cifar10FakeLabels)
		g += n
	}
	writeCIFARFake(t, filepath.Join(dir, "test_batch.bin"), cifarTestBase, testCount, cifar10FakeLabels)
}

// writeCIFAR100Fake writes a CIFAR-100 set into dir: train records 0..train-1 and test records
// cifarTestBase.. .
func writeCIFAR100Fake(t *testing.T, dir string, train, test int) {
	t.Helper()
	writeCIFARFake(t, filepath.Join(dir, "train.bin"), 0, train, cifar100FakeLabels)
	writeCIFARFake(t, filepath.Join(dir, "test.bin"), cifarTestBase, test, cifar100FakeLabels)
}

func mustOpenCIFAR(t *testing.T, opt CIFAROptions) *CIFAR {
	t.Helper()
	c, err := OpenCIFAR(opt)
	if err != nil {
		t.Fatalf("OpenCIFAR(%+v): %v", opt, err)
	}
	return c
}

// checkCIFARExamples checks that src holds exactly the records firstG.. in order, with labels label(g).
func checkCIFARExamples(t *testing.T, src *CIFAR, firstG, n, classes int, label func(g int) int) {
	t.Helper()
	if src.Len() != n || src.NumClasses() != classes {
		t.Fatalf("%s: Len %d, NumClasses %d; want %d, %d", src.Split(), src.Len(), src.NumClasses(), n, classes)
	}
	if c, h, w := src.ImageShape(); c != 3 || h != 32 || w != 32 {
		t.Fatalf("ImageShape = %d, %d, %d; want 3, 32, 32", c, h, w)
	}
	img := make([]uint8, cifarImage)
	for i := range n {
		g := firstG + i
		got, err := src.Get(i, img)
		if err != nil {
			t.Fatalf("%s Get(%d): %v", src.Split(), i, err)
		}
		if got != label(g) {
			t.Errorf("%s example %d: label %d, want %d (record %d)", src.Split(), i, got, label(g), g)
		}
		if !bytes.Equal(img, cifarFakeImage(g)) {
			t.Errorf("%s example %d: pixels differ from record %d", src.Split(), i, g)
		}
	}
}

func TestCIFAR10ReadsRecordsInFileOrder(t *testing.T) {
	dir := t.TempDir()
	writeCIFAR10Fake(t, dir, 3)
	train := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 10, Split: SplitTrain})
	checkCIFARExamples(t, train, 0, cifar10FakeTrain, 10, cifar10FakeLabel)
	test := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 10, Split: SplitTest})
	checkCIFARExamples(t, test, cifarTestBase, 3, 10, cifar10FakeLabel)

	// Spelled out once so the check does not rest on the fake generator alone: example 5 is the first
	// record of data_batch_3.bin; its label is (5*3+1)%10 = 6 and its G plane (channel 1) at row 2,
	// column 3 (p = 67) holds (5*37 + 101 + 67*7) % 256 = 755 % 256 = 243.
	img := make([]uint8, cifarImage)
	label, err := train.Get(5, img)
	if err != nil {
		t.Fatal(err)
	}
	if label != 6 || img[1*1024+2*32+3] != 243 {
		t.Errorf("example 5: label %d, G(2, 3) = %d; want 6, 243", label, img[1*1024+2*32+3])
	}
	// The R plane leads: byte 0 of the image is R(0, 0) = 5*37 % 256 = 185, the B plane starts at 2048.
	if img[0] != 185 || img[2048] != uint8((5*37+202)%256) {
		t.Errorf("example 5: R(0, 0) = %d, B(0, 0) = %d; want 185, %d", img[0], img[2048], (5*37+202)%256)
	}
}

func TestCIFAR100FineAndCoarseLabels(t *testing.T) {
	dir := t.TempDir()
	writeCIFAR100Fake(t, dir, 9, 4)
	fine := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 100, Split: SplitTrain})
	checkCIFARExamples(t, fine, 0, 9, 100, cifar100FakeFine)
	coarse := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 100, Coarse: true, Split: SplitTrain})
	checkCIFARExamples(t, coarse, 0, 9, 20, cifar100FakeCoarse)
	test := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 100, Split: SplitTest})
	checkCIFARExamples(t, test, cifarTestBase, 4, 100, cifar100FakeFine)
	testCoarse := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 100, Coarse: true, Split: SplitTest})
	checkCIFARExamples(t, testCoarse, cifarTestBase, 4, 20, cifar100FakeCoarse)

	// Example 3: coarse (3*7)%20 = 1, fine (3*13+5)%100 = 44, B(31, 31) = (111 + 202 + 1023*7) % 256 = 7474 % 256 = 50.
	img := make([]uint8, cifarImage)
	if l, err := fine.Get(3, img); err != nil || l != 44 || img[3071] != 50 {
		t.Errorf("fine example 3: label %d, B(31, 31) = %d, err %v; want 44, 50", l, img[3071], err)
	}
	if l, err := coarse.Get(3, img); err != nil || l != 1 {
		t.Errorf("coarse example 3: label %d, err %v; want 1", l, err)
	}
}

func TestCIFARValSplitIsTheTailOfTrain(t *testing.T) {
	dir := t.TempDir()
	writeCIFAR10Fake(t, dir, 2)
	// The last five training records span data_batch_4.bin (records 7..9) and data_batch_5.bin (10, 11).
	train := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 10, Split: SplitTrain, ValSize: 5})
	checkCIFARExamples(t, train, 0, 7, 10, cifar10FakeLabel)
	val := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 10, Split: SplitVal, ValSize: 5})
	checkCIFARExamples(t, val, 7, 5, 10, cifar10FakeLabel)
	// The test split is not affected by the val size.
	test := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 10, Split: SplitTest, ValSize: 5})
	checkCIFARExamples(t, test, cifarTestBase, 2, 10, cifar10FakeLabel)

	dir100 := t.TempDir()
	writeCIFAR100Fake(t, dir100, 9, 1)
	train100 := mustOpenCIFAR(t, CIFAROptions{Root: dir100, Classes: 100, Coarse: true, Split: SplitTrain, ValSize: 2})
	checkCIFARExamples(t, train100, 0, 7, 20, cifar100FakeCoarse)
	val100 := mustOpenCIFAR(t, CIFAROptions{Root: dir100, Classes: 100, Coarse: true, Split: SplitVal, ValSize: 2})
	checkCIFARExamples(t, val100, 7, 2, 20, cifar100FakeCoarse)
}

func TestCIFARFindsTheArchiveFolderUnderRoot(t *testing.T) {
	parent := t.TempDir()
	writeCIFAR10Fake(t, filepath.Join(parent, "cifar-10-batches-bin"), 1)
	writeCIFAR100Fake(t, filepath.Join(parent, "cifar-100-binary"), 3, 1)
	for _, root := range []string{parent, filepath.Join(parent, "cifar-10-batches-bin")} {
		c := mustOpenCIFAR(t, CIFAROptions{Root: root, Classes: 10, Split: SplitTrain})
		checkCIFARExamples(t, c, 0, cifar10FakeTrain, 10, cifar10FakeLabel)
	}
	for _, root := range []string{parent, filepath.Join(parent, "cifar-100-binary")} {
		c := mustOpenCIFAR(t, CIFAROptions{Root: root, Classes: 100, Split: SplitTrain})
		checkCIFARExamples(t, c, 0, 3, 100, cifar100FakeFine)
	}
}

func TestCIFARGetIsSafeForConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	writeCIFAR10Fake(t, dir, 1)
	c := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 10, Split: SplitTrain})
	var wg sync.WaitGroup
	errs := make(chan string, 4*c.Len())
	for range 4 {
		wg.Go(func() {
			img := make([]uint8, cifarImage)
			for i := range c.Len() {
				label, err := c.Get(i, img)
				if err != nil || label != cifar10FakeLabel(i) || !bytes.Equal(img, cifarFakeImage(i)) {
					errs <- "example mismatch"
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestCIFARGetRejectsBadArguments(t *testing.T) {
	dir := t.TempDir()
	writeCIFAR10Fake(t, dir, 1)
	c := mustOpenCIFAR(t, CIFAROptions{Root: dir, Classes: 10, Split: SplitTrain, ValSize: 2})
	for _, tc := range []struct {
		i, size int
		want    string
	}{
		{10, cifarImage, "dataset: cifar10 train index 10 out of range [0, 10)"},
		{-1, cifarImage, "dataset: cifar10 train index -1 out of range [0, 10)"},
		{0, 100, "dataset: cifar10 train example 0: destination holds 100 bytes, want 3072"},
	} {
		if _, err := c.Get(tc.i, make([]uint8, tc.size)); err == nil || err.Error() != tc.want {
			t.Errorf("Get(%d) into %d bytes: error %v, want %q", tc.i, tc.size, err, tc.want)
		}
	}
}

func TestOpenCIFARRejectsBadInput(t *testing.T) {
	writeFile := func(t *testing.T, path string, data []byte) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cifar10 := func(t *testing.T, dir string) { writeCIFAR10Fake(t, dir, 20) }
	cifar100 := func(t *testing.T, dir string) { writeCIFAR100Fake(t, dir, 5, 1) }
	train10 := CIFAROptions{Classes: 10, Split: SplitTrain}
	with := func(o CIFAROptions, edit func(*CIFAROptions)) CIFAROptions { edit(&o); return o }

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		opt   CIFAROptions // Root becomes the test's directory unless noRoot
		// noRoot keeps opt.Root as written. "$DIR" in opt.Root and in want stands for the test's directory.
		noRoot bool
		want   string
	}{
		{
			name: "missing batch", opt: train10,
			setup: func(t *testing.T, dir string) { cifar10(t, dir); os.Remove(filepath.Join(dir, "data_batch_3.bin")) },
			want:  "dataset: cifar10: missing $DIR/data_batch_3.bin (expected data_batch_1..5.bin and test_batch.bin)",
		},
		{
			name: "missing test file", opt: with(train10, func(o *CIFAROptions) { o.Split = SplitTest }),
			setup: func(t *testing.T, dir string) { cifar10(t, dir); os.Remove(filepath.Join(dir, "test_batch.bin")) },
			want:  "dataset: cifar10: missing $DIR/test_batch.bin (expected data_batch_1..5.bin and test_batch.bin)",
		},
		{
			name: "missing cifar100 train file", opt: CIFAROptions{Classes: 100, Split: SplitVal, ValSize: 1},
			setup: func(t *testing.T, dir string) { cifar100(t, dir); os.Remove(filepath.Join(dir, "train.bin")) },
			want:  "dataset: cifar100: missing $DIR/train.bin (expected train.bin and test.bin)",
		},
		{
			name: "partial record", opt: train10,
			setup: func(t *testing.T, dir string) {
				cifar10(t, dir)
				writeFile(t, filepath.Join(dir, "data_batch_2.bin"), make([]byte, 2*3073+5))
			},
			want: "dataset: cifar10: $DIR/data_batch_2.bin: 6151 bytes is not a whole number of 3073-byte records (2 records and 5 bytes over)",
		},
		{
			name: "cifar100 records under cifar10 names", opt: train10,
			setup: func(t *testing.T, dir string) {
				cifar10(t, dir)
				writeFile(t, filepath.Join(dir, "data_batch_1.bin"), make([]byte, 3*3074))
			},
			want: "dataset: cifar10: $DIR/data_batch_1.bin: 9222 bytes is not a whole number of 3073-byte records (3 records and 3 bytes over)",
		},
		{
			name: "short file", opt: CIFAROptions{Classes: 100, Split: SplitTest},
			setup: func(t *testing.T, dir string) {
				cifar100(t, dir)
				writeFile(t, filepath.Join(dir, "test.bin"), make([]byte, 1000))
			},
			want: "dataset: cifar100: $DIR/test.bin: 1000 bytes is not a whole number of 3074-byte records (0 records and 1000 bytes over)",
		},
		{
			name: "empty file", opt: train10,
			setup: func(t *testing.T, dir string) {
				cifar10(t, dir)
				writeFile(t, filepath.Join(dir, "data_batch_4.bin"), nil)
			},
			want: "dataset: cifar10: $DIR/data_batch_4.bin is empty (want a whole number of 3073-byte records)",
		},
		{
			name: "label out of range", opt: with(train10, func(o *CIFAROptions) { o.Split = SplitTest }),
			setup: func(t *testing.T, dir string) {
				cifar10(t, dir)
				path := filepath.Join(dir, "test_batch.bin")
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				data[17*3073] = 12
				writeFile(t, path, data)
			},
			want: "dataset: cifar10: $DIR/test_batch.bin: record 17 at byte offset 52241: label 12 is outside 0..9",
		},
		{
			// Every training file is checked, even when the bad record is in the val tail.
			name: "label out of range in the last batch", opt: train10,
			setup: func(t *testing.T, dir string) {
				cifar10(t, dir)
				path := filepath.Join(dir, "data_batch_5.bin")
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				data[3073] = 255
				writeFile(t, path, data)
			},
			want: "dataset: cifar10: $DIR/data_batch_5.bin: record 1 at byte offset 3073: label 255 is outside 0..9",
		},
		{
			name: "fine label out of range", opt: CIFAROptions{Classes: 100, Coarse: true, Split: SplitTrain},
			setup: func(t *testing.T, dir string) {
				cifar100(t, dir)
				path := filepath.Join(dir, "train.bin")
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				data[2*3074+1] = 100
				writeFile(t, path, data)
			},
			want: "dataset: cifar100: $DIR/train.bin: record 2 at byte offset 6148: fine label 100 is outside 0..99",
		},
		{
			name: "coarse label out of range", opt: CIFAROptions{Classes: 100, Split: SplitTrain},
			setup: func(t *testing.T, dir string) {
				cifar100(t, dir)
				path := filepath.Join(dir, "train.bin")
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				data[4*3074] = 20
				writeFile(t, path, data)
			},
			want: "dataset: cifar100: $DIR/train.bin: record 4 at byte offset 12296: coarse label 20 is outside 0..19",
		},
		{
			name: "val size as large as train", opt: with(train10, func(o *CIFAROptions) { o.ValSize = 12 }), setup: cifar10,
			want: "dataset: cifar10: val size 12 must be less than the 12 training examples in $DIR",
		},
		{
			name: "val size too large for val", opt: CIFAROptions{Classes: 100, Split: SplitVal, ValSize: 50}, setup: cifar100,
			want: "dataset: cifar100: val size 50 must be less than the 5 training examples in $DIR",
		},
		{
			name: "val without val size", opt: with(train10, func(o *CIFAROptions) { o.Split = SplitVal }), setup: cifar10,
			want: "dataset: cifar10: the val split needs a val size > 0 (got 0); it is carved from the end of the training files",
		},
		{
			name: "negative val size", opt: with(train10, func(o *CIFAROptions) { o.ValSize = -1 }), setup: cifar10,
			want: "dataset: cifar10: val size must be >= 0 (got -1)",
		},
		{
			name: "unknown split", opt: with(train10, func(o *CIFAROptions) { o.Split = "dev" }), setup: cifar10,
			want: `dataset: cifar10: split must be "train", "val" or "test" (got "dev")`,
		},
		{
			name: "classes", opt: with(train10, func(o *CIFAROptions) { o.Classes = 20 }), setup: cifar10,
			want: "dataset: cifar classes must be 10 or 100 (got 20)",
		},
		{
			name: "coarse cifar10", opt: with(train10, func(o *CIFAROptions) { o.Coarse = true }), setup: cifar10,
			want: "dataset: cifar10: coarse labels exist only in CIFAR-100; set classes to 100 or turn coarse off",
		},
		{
			name: "no root", opt: train10, noRoot: true, setup: cifar10,
			want: "dataset: cifar10: root is not set; want the folder holding data_batch_1..5.bin and test_batch.bin, or its parent",
		},
		{
			name: "root does not exist", opt: with(train10, func(o *CIFAROptions) { o.Root = "$DIR/nowhere" }), noRoot: true, setup: cifar10,
			want: "dataset: cifar10: root $DIR/nowhere does not exist; want the folder holding data_batch_1..5.bin and test_batch.bin, or its parent",
		},
		{
			name: "root is a file", opt: with(train10, func(o *CIFAROptions) { o.Root = "$DIR/test_batch.bin" }), noRoot: true, setup: cifar10,
			want: "dataset: cifar10: root $DIR/test_batch.bin is not a directory; want the folder holding data_batch_1..5.bin and test_batch.bin, or its parent",
		},
		{
			name: "root holds the other set", opt: train10, setup: cifar100,
			want: "dataset: cifar10: no CIFAR-10 binary files in $DIR or $DIR/cifar-10-batches-bin (expected data_batch_1..5.bin and test_batch.bin, unpacked from cifar-10-binary.tar.gz)",
		},
		{
			name: "archive folder is incomplete", opt: CIFAROptions{Classes: 100, Split: SplitTest},
			setup: func(t *testing.T, dir string) {
				cifar100(t, filepath.Join(dir, "cifar-100-binary"))
				os.Remove(filepath.Join(dir, "cifar-100-binary", "test.bin"))
			},
			want: "dataset: cifar100: missing $DIR/cifar-100-binary/test.bin (expected train.bin and test.bin)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			opt := tc.opt
			if tc.noRoot {
				opt.Root = strings.ReplaceAll(opt.Root, "$DIR", dir)
			} else {
				opt.Root = dir
			}
			want := strings.ReplaceAll(tc.want, "$DIR", dir)
			c, err := OpenCIFAR(opt)
			if err == nil || err.Error() != want {
				t.Errorf("OpenCIFAR error = %v\nwant %s", err, want)
			}
			if c != nil {
				t.Errorf("OpenCIFAR returned a source with its error")
			}
		})
	}
}
