package dataset

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"resnet/internal/vision"
)

// writeImage encodes a w x h image filled with c as JPEG (or PNG when asPNG) at path.
func writeImage(t *testing.T, path string, w, h int, c color.RGBA, asPNG bool) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	var err error
	if asPNG {
		err = png.Encode(&b, img)
	} else {
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 95})
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeTree writes root/train/{b,a}/ with three images each, plus bad files in class b, and a flat val/
// folder with a label file.
func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, c := range []string{"b_class", "a_class"} {
		for i := 0; i < 3; i++ {
			writeImage(t, filepath.Join(root, "train", c, "img"+string(rune('0'+i))+".JPEG"), 40+i, 30, color.RGBA{200, 100, 50, 255}, false)
		}
	}
	// A PNG named .JPEG decodes by its content.
	writeImage(t, filepath.Join(root, "train", "b_class", "png_named.JPEG"), 32, 32, color.RGBA{10, 20, 30, 255}, true)
	os.WriteFile(filepath.Join(root, "train", "b_class", "notes.txt"), []byte("not an image"), 0o644)
	os.WriteFile(filepath.Join(root, "train", "b_class", "zero.JPEG"), nil, 0o644)
	good, _ := os.ReadFile(filepath.Join(root, "train", "a_class", "img0.JPEG"))
	os.WriteFile(filepath.Join(root, "train", "b_class", "truncated.JPEG"), good[:len(good)/2], 0o644)
	os.WriteFile(filepath.Join(root, "train", "b_class", "garbage.JPEG"), []byte("GIF89a not really"), 0o644)
	writeImage(t, filepath.Join(root, "val", "v1.JPEG"), 50, 40, color.RGBA{0, 0, 0, 255}, false)
	writeImage(t, filepath.Join(root, "val", "v2.png"), 50, 40, color.RGBA{0, 0, 0, 255}, true)
	os.WriteFile(filepath.Join(root, "val_labels.txt"), []byte("# file class\nv1.JPEG b_class\nv2.png 0\n"), 0o644)
	return root
}

func TestScanFolderClassesLabelsAndCache(t *testing.T) {
	root := makeTree(t)
	idx, err := ScanFolder(FolderOptions{Root: root, Split: "train"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(idx.Classes, ",") != "a_class,b_class" {
		t.Errorf("classes %v, want sorted folder names", idx.Classes)
	}
	want := "a_class/img0.JPEG:0 a_class/img1.JPEG:0 a_class/img2.JPEG:0 b_class/garbage.JPEG:1 b_class/img0.JPEG:1 b_class/img1.JPEG:1 b_class/img2.JPEG:1 b_class/png_named.JPEG:1 b_class/truncated.JPEG:1 b_class/zero.JPEG:1"
	var got []string
	for i, f := range idx.Files {
		got = append(got, f+":"+string(rune('0'+idx.Labels[i])))
	}
	if strings.Join(got, " ") != want {
		t.Errorf("files\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	cache := filepath.Join(root, ".resnet-index-train.json")
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("index cache not written: %v", err)
	}
	// A cached index is used as long as the folders are unchanged: poison it and see it come back.
	b, _ := os.ReadFile(cache)
	os.WriteFile(cache, bytes.Replace(b, []byte("img0.JPEG"), []byte("imgX.JPEG"), 1), 0o644)
	again, _ := ScanFolder(FolderOptions{Root: root, Split: "train"})
	if again.Files[0] != "a_class/imgX.JPEG" {
		t.Errorf("cache not used: first file %s", again.Files[0])
	}
	// Adding a file changes the class folder's time stamp, and the next scan sees it.
	later := time.Now().Add(2 * time.Second)
	writeImage(t, filepath.Join(root, "train", "a_class", "new.JPEG"), 8, 8, color.RGBA{}, false)
	os.Chtimes(filepath.Join(root, "train", "a_class"), later, later)
	fresh, _ := ScanFolder(FolderOptions{Root: root, Split: "train"})
	if len(fresh.Files) != 11 || fresh.Files[0] != "a_class/img0.JPEG" {
		t.Errorf("rescan after a change: %d files, first %s", len(fresh.Files), fresh.Files[0])
	}
}

func TestScanFolderLabelFile(t *testing.T) {
	root := makeTree(t)
	idx, err := ScanFolder(FolderOptions{Root: root, Split: "val", Classes: []string{"a_class", "b_class"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Files) != 2 || idx.Labels[0] != 1 || idx.Labels[1] != 0 {
		t.Errorf("val index %+v", idx)
	}
	os.WriteFile(filepath.Join(root, "val_labels.txt"), []byte("v1.JPEG b_class\nv2.png zebra\n"), 0o644)
	_, err = ScanFolder(FolderOptions{Root: root, Split: "val", Classes: []string{"a_class", "b_class"}})
	want := `dataset imagenet: ` + filepath.Join(root, "val_labels.txt") + ` line 2: unknown class "zebra" (want one of the 2 class names or an index)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	os.WriteFile(filepath.Join(root, "val_labels.txt"), []byte("v1.JPEG\n"), 0o644)
	if _, err := ScanFolder(FolderOptions{Root: root, Split: "val"}); err == nil || !strings.Contains(err.Error(), `line 1: want "<file> <class>", got "v1.JPEG"`) {
		t.Errorf("malformed line: %v", err)
	}
	if _, err := ScanFolder(FolderOptions{Root: root, Split: "nope"}); err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("missing split: %v", err)
	}
}

// The folder pipeline through the loader: bad files are skipped and named, good ones arrive normalised,
// a PNG named .JPEG decodes, and strict mode stops at the first bad file.
func TestFolderPipelineSkipsBadImages(t *testing.T) {
	root := makeTree(t)
	idx, err := ScanFolder(FolderOptions{Root: root, Split: "train"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewFolderPipeline(filepath.Join(root, "train"), idx, FolderPipelineOptions{Transform: TransformCenter, Size: 16, Resize: 20})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewPipelineLoader(p, LoaderOptions{BatchSize: 10, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Start(0, 0)
	b, err := l.Next()
	if err != nil {
		t.Fatal(err)
	}
	if b.N != 7 || len(b.Skipped) != 3 {
		t.Fatalf("%d good and %d skipped, want 7 and 3", b.N, len(b.Skipped))
	}
	for i, want := range []string{"garbage.JPEG: vision: unknown image format", "truncated.JPEG: ", "zero.JPEG: empty file"} {
		if got := b.Skipped[i].Error(); !strings.Contains(got, want) || !strings.HasPrefix(got, "bad image "+root) {
			t.Errorf("skipped[%d] = %q, want it to name the path and contain %q", i, got, want)
		}
	}
	// A solid image stays solid through resize and crop: every value is (v - mean) / std. The PNG is exact.
	png := b.X[6*3*16*16 : 7*3*16*16]
	for c, v := range []float32{10, 20, 30} {
		want := (v - vision.ImageNetMean[c]) / vision.ImageNetStd[c]
		for _, got := range png[c*256 : (c+1)*256] {
			if d := got - want; d > 1e-5 || d < -1e-5 {
				t.Fatalf("channel %d: %v, want %v", c, got, want)
			}
		}
	}
	l.Release(b)

	strict, _ := NewPipelineLoader(p, LoaderOptions{BatchSize: 10, Workers: 2, Strict: true})
	defer strict.Close()
	strict.Start(0, 0)
	if _, err := strict.Next(); err == nil || !strings.Contains(err.Error(), "garbage.JPEG") {
		t.Errorf("strict mode: %v", err)
	}
}

// Training transforms are deterministic per (seed, epoch, example), whatever the worker count.
func TestFolderPipelineDeterministicAcrossWorkers(t *testing.T) {
	root := makeTree(t)
	idx, _ := ScanFolder(FolderOptions{Root: root, Split: "train"})
	for _, tr := range []ImageTransform{TransformRRC, TransformScale} {
		p, err := NewFolderPipeline(filepath.Join(root, "train"), idx, FolderPipelineOptions{Transform: tr, Size: 24, PCALighting: true})
		if err != nil {
			t.Fatal(err)
		}
		var runs [][]float32
		for _, workers := range []int{1, 3} {
			l, _ := NewPipelineLoader(p, LoaderOptions{BatchSize: 4, Workers: workers, Shuffle: true, Seed: 5})
			l.Start(1, 0)
			var all []float32
			for {
				b, err := l.Next()
				if err != nil {
					t.Fatal(err)
				}
				if b == nil {
					break
				}
				all = append(all, b.X...)
				l.Release(b)
			}
			l.Close()
			runs = append(runs, all)
		}
		if len(runs[0]) == 0 || !equalF32(runs[0], runs[1]) {
			t.Errorf("%s: batches differ between 1 and 3 workers", tr)
		}
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The evaluation transform sees the pixels Pillow decodes: a JPEG and Pillow's decode of it saved as PNG
// (internal/vision/testdata, see make_pillow_pair.py there) give identical examples. The scale
// augmentation, which decodes fast, is not held to that.
func TestFolderPipelineEvaluatesPillowPixels(t *testing.T) {
	root := t.TempDir()
	for class, name := range map[string]string{"a_jpeg": "pillow420.jpg", "b_png": "pillow420.png"} {
		data, err := os.ReadFile(filepath.Join("..", "vision", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, "val", class), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "val", class, "img.JPEG"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := ScanFolder(FolderOptions{Root: root, Split: "val"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewFolderPipeline(filepath.Join(root, "val"), idx, FolderPipelineOptions{Transform: TransformCenter, Size: 32, Resize: 40})
	if err != nil {
		t.Fatal(err)
	}
	w := p.NewWorker()
	jpg, png := make([]float32, 3*32*32), make([]float32, 3*32*32)
	if _, err := w.Load(0, nil, jpg); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Load(1, nil, png); err != nil {
		t.Fatal(err)
	}
	for i := range jpg {
		if jpg[i] != png[i] {
			t.Fatalf("value %d: %v from the JPEG, %v from Pillow's decode of it", i, jpg[i], png[i])
		}
	}
}
