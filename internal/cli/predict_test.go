package cli

import (
	"bufio"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/dataset"
	"resnet/internal/eval"
	"resnet/internal/model"
	"resnet/internal/train"
)

// writeSourcePNGs writes the first n images of src as PNG files in dir and returns their paths.
func writeSourcePNGs(t *testing.T, src dataset.Source, n int, dir string) []string {
	t.Helper()
	c, h, w := src.ImageShape()
	buf := make([]uint8, c*h*w)
	var paths []string
	for i := range n {
		if _, err := src.Get(i, buf); err != nil {
			t.Fatal(err)
		}
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				p := y*w + x
				img.Set(x, y, color.RGBA{buf[p], buf[h*w+p], buf[2*h*w+p], 255})
			}
		}
		path := filepath.Join(dir, string(rune('a'+i))+".png")
		writePNG(t, path, img)
		paths = append(paths, path)
	}
	return paths
}

// readPredictions parses predict --json output.
func readPredictions(t *testing.T, out string) []prediction {
	t.Helper()
	var ps []prediction
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var p prediction
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("%v in %q", err, sc.Text())
		}
		ps = append(ps, p)
	}
	return ps
}

// predict gives each image the probabilities the evaluation gives it (1-crop and ten-crop): the images
// of the run's own test split, saved as PNG files, score as eval.Collect scores them in the split. The
// classes come highest first with the data set's names; an unreadable file is reported in its place and
// the others are still classified.
func TestPredictMatchesEvaluation(t *testing.T) {
	run, _ := importedRun(t)
	net, data := restoredRun(t, run, 10, 32, 32)
	dir := t.TempDir()
	const n = 5
	paths := writeSourcePNGs(t, data.EvalSet.Source, n, dir)
	broken := filepath.Join(dir, "bb-broken.png") // sorts between b.png and c.png
	if err := os.WriteFile(broken, []byte("\x89PNG\r\n\x1a\ntruncated"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, proto := range []string{eval.CenterCrop, eval.TenCrop} {
		want, err := eval.Collect(net, data.Eval, data.EvalSet, eval.Options{Protocol: eval.Protocol{Kind: proto}, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"predict", "--checkpoint", run, dir, "--json", "--top", "10", "--device", "cpu"}
		if proto == eval.TenCrop {
			args = append(args, "--ten-crop")
		}
		code, out, stderr := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", proto, code, stderr)
		}
		if !strings.Contains(stderr, "skipping "+broken) {
			t.Errorf("%s: the unreadable file is not reported: %q", proto, stderr)
		}
		got := readPredictions(t, out)
		if len(got) != n+1 || got[2].Path != broken || got[2].Error == "" || len(got[2].Indices) != 0 {
			t.Fatalf("%s: %d lines, want %d with the broken file's error third: %+v", proto, len(got), n+1, got)
		}
		got = append(got[:2], got[3:]...)
		for i, p := range got {
			if p.Path != paths[i] || len(p.Indices) != 10 || len(p.Names) != 10 || len(p.Probabilities) != 10 {
				t.Fatalf("%s: line %d: %+v", proto, i, p)
			}
			for j, c := range p.Indices {
				if w := want.P[i*10+c]; math.Abs(float64(p.Probabilities[j]-w)) > 1e-6 {
					t.Errorf("%s: %s class %d: probability %v, evaluation %v", proto, p.Path, c, p.Probabilities[j], w)
				}
				if p.Names[j] != dataset.SyntheticClassNames[c] {
					t.Errorf("%s: class %d named %q, want %q", proto, c, p.Names[j], dataset.SyntheticClassNames[c])
				}
				if j > 0 && p.Probabilities[j] > p.Probabilities[j-1] {
					t.Errorf("%s: %s: classes not highest first: %v", proto, p.Path, p.Probabilities)
				}
			}
		}
	}

	// The table: each image, then its top classes highest first, named from --labels.
	labels := filepath.Join(dir, "labels.txt")
	names := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
	if err := os.WriteFile(labels, []byte(strings.Join(names, "\n")+"\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	first := readPredictions(t, runJSON(t, "predict", "--checkpoint", run, paths[0], "--top", "2", "--device", "cpu", "--json"))[0]
	out := runJSON(t, "predict", "--checkpoint", run, paths[0], "--top", "2", "--labels", labels, "--device", "cpu")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != paths[0] || !strings.HasSuffix(lines[1], "  "+names[first.Indices[0]]) ||
		!strings.HasSuffix(lines[2], "  "+names[first.Indices[1]]) {
		t.Errorf("predict --labels printed %q; want %s, then classes %v named from --labels", out, paths[0], first.Indices)
	}
}

// restoredRun builds the net of a run's newest checkpoint on the CPU (classes classes, size x size inputs,
// capacity examples) and opens the run's data.
func restoredRun(t *testing.T, run string, classes, size, capacity int) (*model.Net, *train.Data) {
	t.Helper()
	cfg, err := config.Load(config.Source{File: filepath.Join(run, "config.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	data, err := train.OpenData(cfg.Dataset, cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	path, err := train.FindCheckpoint(run)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := train.OpenCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := train.SpecFor(cfg.Model, classes, size)
	if err != nil {
		t.Fatal(err)
	}
	net, err := model.Build(cpu.New(), spec, capacity)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(net.Free)
	if err := ck.Restore(net, false); err != nil {
		t.Fatal(err)
	}
	return net, data
}

// runJSON runs the CLI and returns its stdout, failing the test on a non-zero exit.
func runJSON(t *testing.T, args ...string) string {
	t.Helper()
	code, out, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, stderr)
	}
	return out
}

func TestPredictErrors(t *testing.T) {
	run, _ := importedRun(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "x.png")
	writePNG(t, img, image.NewRGBA(image.Rect(0, 0, 8, 8)))
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("x"), 0o644)
	short := filepath.Join(dir, "short.txt")
	os.WriteFile(short, []byte("a\nb\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{img}, "--checkpoint is required"},
		{[]string{"--checkpoint", run, filepath.Join(dir, "missing.jpg")}, "missing.jpg: no such file or directory"},
		{[]string{"--checkpoint", run, empty}, "holds no images"},
		{[]string{"--checkpoint", run, img, "--top", "0"}, "--top must be >= 1"},
		{[]string{"--checkpoint", run, img, "--labels", short}, "has 2 names (one per line), the net has 10 classes"},
		{[]string{"--checkpoint", filepath.Join(dir, "norun"), img}, "norun"},
	} {
		code, _, stderr := runCLI(t, append([]string{"predict", "--device", "cpu"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("predict %v: exit %d, stderr %q; want an error saying %q", c.args, code, stderr, c.want)
		}
	}
}

// A run on an ImageNet-style folder: predict resizes and centre-crops as the evaluation does (the
// probabilities of the val images equal eval.Collect's on the val split) and names the classes after the
// class folders of root/train.
func TestPredictImageNetStyleRun(t *testing.T) {
	root := t.TempDir()
	var valPaths []string
	for _, split := range []string{"train", "val"} {
		for c, class := range []string{"ant", "bee"} {
			d := filepath.Join(root, split, class)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				img := image.NewRGBA(image.Rect(0, 0, 44+4*i, 38))
				for y := range 38 {
					for x := range 44 + 4*i {
						img.Set(x, y, color.RGBA{uint8(60 * c), uint8(5*x + 3*y), uint8(7 * (x ^ y)), 255})
					}
				}
				path := filepath.Join(d, string(rune('p'+i))+".png")
				writePNG(t, path, img)
				if split == "val" {
					valPaths = append(valPaths, path)
				}
			}
		}
	}
	run := filepath.Join(t.TempDir(), "r18")
	runJSON(t, "train", "--config", "resnet18", "--out", run, "--device", "cpu", "--epochs", "1",
		"--set", "dataset.root="+root, "--set", "dataset.image_size=32", "--set", "dataset.resize_size=36",
		"--set", "train.batch_size=2", "--set", "eval.batch_size=2", "--set", "dataset.workers=1")
	net, data := restoredRun(t, run, 2, 32, 4)
	want, err := eval.Collect(net, data.Eval, data.EvalSet, eval.Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := readPredictions(t, runJSON(t, "predict", "--checkpoint", run, filepath.Join(root, "val"), "--json", "--device", "cpu"))
	if len(got) != len(valPaths) {
		t.Fatalf("%d predictions for %d images", len(got), len(valPaths))
	}
	for i, p := range got {
		if p.Path != valPaths[i] || len(p.Indices) != 2 || p.Names[0] != []string{"ant", "bee"}[p.Indices[0]] {
			t.Errorf("prediction %d: %+v", i, p)
			continue
		}
		for j, c := range p.Indices {
			if w := want.P[i*2+c]; math.Abs(float64(p.Probabilities[j]-w)) > 1e-6 {
				t.Errorf("%s class %d: probability %v, evaluation %v", p.Path, c, p.Probabilities[j], w)
			}
		}
	}
}

// writePNG writes img to path as a PNG file.
func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}
