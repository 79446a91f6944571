// This file reads the binary versions of CIFAR-10 and CIFAR-100 (cifar-10-binary.tar.gz and
// cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) fully into memory.

package dataset

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// CIFAR image geometry: every record stores a 32x32 RGB image as three row-major planes (R, G, B), which
// is already the CHW layout a Source returns.
const (
	cifarChannels = 3
	cifarSize     = 32
	cifarImage    = cifarChannels * cifarSize * cifarSize
)

// CIFAROptions selects a CIFAR set, a split and where its files are.
type CIFAROptions struct {
	// Root is the directory holding the .bin files, or a parent that contains cifar-10-batches-bin/ or
	// cifar-100-binary/ (the folders the archives unpack to).
	Root string
	// Classes is 10 (CIFAR-10) or 100 (CIFAR-100).
	Classes int
	// Coarse selects CIFAR-100's 20 superclass labels instead of its 100 fine labels.
	Coarse bool
	// Split is "train", "val" or "test".
	Split string
	// ValSize, when > 0, takes the last ValSize examples of the training files as the "val" split and
	// leaves them out of "train" (the ResNet paper's 45k/5k split uses 5000). The test split ignores it.
	ValSize int
}

// cifarLayout describes one binary CIFAR variant: its files and record format.
type cifarLayout struct {
	name     string   // in error messages: "cifar10"
	title    string   // "CIFAR-10"
	subdir   string   // the folder the archive unpacks to
	train    []string // training files, in example order
	test     string
	expected string // the file list, for error messages
	archive  string
	// labels are the label bytes at the start of each record, in record order, with their ranges.
	labels []cifarLabel
}

type cifarLabel struct {
	name    string // "label", "coarse label", "fine label"
	classes int
}

var (
	cifar10Layout = cifarLayout{
		name:     "cifar10",
		title:    "CIFAR-10",
		subdir:   "cifar-10-batches-bin",
		train:    []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
		test:     "test_batch.bin",
		expected: "data_batch_1..5.bin and test_batch.bin",
		archive:  "cifar-10-binary.tar.gz",
		labels:   []cifarLabel{{"label", 10}},
	}
	cifar100Layout = cifarLayout{
		name:     "cifar100",
		title:    "CIFAR-100",
		subdir:   "cifar-100-binary",
		train:    []string{"train.bin"},
		test:     "test.bin",
		expected: "train.bin and test.bin",
		archive:  "cifar-100-binary.tar.gz",
		labels:   []cifarLabel{{"coarse label", 20}, {"fine label", 100}},
	}
)

func (l *cifarLayout) recordSize() int { return len(l.labels) + cifarImage }

// CIFAR is one split of CIFAR-10 or CIFAR-100 held in memory as the files' own records. It implements
// Source; Get only reads, so concurrent calls are safe.
type CIFAR struct {
	name       string // "cifar10" or "cifar100", for error messages
	split      string
	classes    int
	recordSize int
	labelAt    int // offset of the label Get returns within a record
	pixelsAt   int // offset of the image within a record
	records    []byte
	n          int
}

// OpenCIFAR reads and validates the files of the requested split. Train and val read every training
// file; test reads only the test file.
func OpenCIFAR(opt CIFAROptions) (*CIFAR, error) {
	var layout *cifarLayout
	switch opt.Classes {
	case 10:
		layout = &cifar10Layout
	case 100:
		layout = &cifar100Layout
	default:
		return nil, fmt.Errorf("dataset: cifar classes must be 10 or 100 (got %d)", opt.Classes)
	}
	name := layout.name
	if opt.Coarse && opt.Classes != 100 {
		return nil, fmt.Errorf("dataset: %s: coarse labels exist only in CIFAR-100; set classes to 100 or turn coarse off", name)
	}
	switch opt.Split {
	case SplitTrain, SplitVal, SplitTest:
	default:
		return nil, fmt.Errorf("dataset: %s: split must be %q, %q or %q (got %q)", name, SplitTrain, SplitVal, SplitTest, opt.Split)
	}
	if opt.ValSize < 0 {
		return nil, fmt.Errorf("dataset: %s: val size must be >= 0 (got %d)", name, opt.ValSize)
	}
	if opt.Split == SplitVal && opt.ValSize == 0 {
		return nil, fmt.Errorf("dataset: %s: the val split needs a val size > 0 (got 0); it is carved from the end of the training files", name)
	}

	dir, err := layout.resolve(opt.Root)
	if err != nil {
		return nil, err
	}
	files := layout.train
	if opt.Split == SplitTest {
		files = []string{layout.test}
	}
	paths := make([]string, len(files))
	for k, f := range files {
		paths[k] = filepath.Join(dir, f)
	}
	records, err := layout.read(paths)
	if err != nil {
		return nil, err
	}

	c := &CIFAR{
		name:       name,
		split:      opt.Split,
		classes:    layout.labels[len(layout.labels)-1].classes,
		recordSize: layout.recordSize(),
		labelAt:    len(layout.labels) - 1, // the fine label is the last one
		pixelsAt:   len(layout.labels),
	}
	if opt.Coarse {
		c.classes, c.labelAt = layout.labels[0].classes, 0
	}
	n := len(records) / c.recordSize
	if opt.Split != SplitTest && opt.ValSize >= n {
		return nil, fmt.Errorf("dataset: %s: val size %d must be less than the %d training examples in %s", name, opt.ValSize, n, dir)
	}
	switch opt.Split {
	case SplitTrain:
		n -= opt.ValSize
		c.records = slices.Clip(records[:n*c.recordSize])
	case SplitVal:
		// A copy, so the training records are not kept alive for a few thousand examples.
		c.records = slices.Clone(records[(n-opt.ValSize)*c.recordSize:])
		n = opt.ValSize
	default:
		c.records = records
	}
	c.n = n
	return c, nil
}

// resolve finds the directory holding the files: root itself when it holds any of them, else the
// archive's folder inside root.
func (l *cifarLayout) resolve(root string) (string, error) {
	want := fmt.Sprintf("want the folder holding %s, or its parent", l.expected)
	if root == "" {
		return "", fmt.Errorf("dataset: %s: root is not set; %s", l.name, want)
	}
	st, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("dataset: %s: root %s does not exist; %s", l.name, root, want)
	case err != nil:
		return "", fmt.Errorf("dataset: %s: %w", l.name, err)
	case !st.IsDir():
		return "", fmt.Errorf("dataset: %s: root %s is not a directory; %s", l.name, root, want)
	}
	for _, f := range append(slices.Clone(l.train), l.test) {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			return root, nil
		}
	}
	sub := filepath.Join(root, l.subdir)
	if st, err := os.Stat(sub); err == nil && st.IsDir() {
		return sub, nil
	}
	return "", fmt.Errorf("dataset: %s: no %s binary files in %s or %s (expected %s, unpacked from %s)",
		l.name, l.title, root, sub, l.expected, l.archive)
}

// read checks the sizes of all files before reading any, then reads them into one buffer in order and
// checks every record's labels.
func (l *cifarLayout) read(paths []string) ([]byte, error) {
	recordSize := l.recordSize()
	sizes := make([]int, len(paths))
	total := 0
	for k, p := range paths {
		st, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("dataset: %s: missing %s (expected %s)", l.name, p, l.expected)
		case err != nil:
			return nil, fmt.Errorf("dataset: %s: %w", l.name, err)
		case !st.Mode().IsRegular():
			return nil, fmt.Errorf("dataset: %s: %s is not a regular file", l.name, p)
		case st.Size() == 0:
			return nil, fmt.Errorf("dataset: %s: %s is empty (want a whole number of %d-byte records)", l.name, p, recordSize)
		case st.Size()%int64(recordSize) != 0:
			return nil, fmt.Errorf("dataset: %s: %s: %d bytes is not a whole number of %d-byte records (%d records and %d bytes over)",
				l.name, p, st.Size(), recordSize, st.Size()/int64(recordSize), st.Size()%int64(recordSize))
		}
		sizes[k] = int(st.Size())
		total += sizes[k]
	}

	buf := make([]byte, total)
	off := 0
	for k, p := range paths {
		part := buf[off : off+sizes[k]]
		if err := readExactly(p, part); err != nil {
			return nil, fmt.Errorf("dataset: %s: %w", l.name, err)
		}
		if err := l.checkLabels(p, part); err != nil {
			return nil, err
		}
		off += sizes[k]
	}
	return buf, nil
}

// readExactly fills dst from the file at path and fails if the file holds fewer or more bytes, which
// means it changed after its size was checked.
func readExactly(path string, dst []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.ReadFull(f, dst)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: read only %d of %d bytes; the file changed while being read", path, n, len(dst))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var extra [1]byte
	if m, _ := f.Read(extra[:]); m > 0 {
		return fmt.Errorf("%s: holds more than %d bytes; the file changed while being read", path, len(dst))
	}
	return nil
}

// checkLabels reports the first record of file path (contents data) whose label bytes are out of range.
func (l *cifarLayout) checkLabels(path string, data []byte) error {
	recordSize := l.recordSize()
	for off := 0; off < len(data); off += recordSize {
		for k, lb := range l.labels {
			if v := int(data[off+k]); v >= lb.classes {
				return fmt.Errorf("dataset: %s: %s: record %d at byte offset %d: %s %d is outside 0..%d",
					l.name, path, off/recordSize, off, lb.name, v, lb.classes-1)
			}
		}
	}
	return nil
}

// Len implements Source.
func (c *CIFAR) Len() int { return c.n }

// NumClasses implements Source: 10 for CIFAR-10, 100 for CIFAR-100, 20 for its coarse labels.
func (c *CIFAR) NumClasses() int { return c.classes }

// ImageShape implements Source.
func (c *CIFAR) ImageShape() (ch, h, w int) { return cifarChannels, cifarSize, cifarSize }

// Split is the split this source holds.
func (c *CIFAR) Split() string { return c.split }

// Get implements Source: it copies example i into dst (3*32*32 bytes, CHW) and returns its label.
func (c *CIFAR) Get(i int, dst []uint8) (int, error) {
	if i < 0 || i >= c.n {
		return 0, fmt.Errorf("dataset: %s %s index %d out of range [0, %d)", c.name, c.split, i, c.n)
	}
	if len(dst) != cifarImage {
		return 0, fmt.Errorf("dataset: %s %s example %d: destination holds %d bytes, want %d", c.name, c.split, i, len(dst), cifarImage)
	}
	rec := c.records[i*c.recordSize : (i+1)*c.recordSize]
	copy(dst, rec[c.pixelsAt:])
	return int(rec[c.labelAt]), nil
}
