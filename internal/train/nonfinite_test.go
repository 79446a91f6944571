package train

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"testing"

	"resnet/internal/config"
	"resnet/internal/cpu"
	"resnet/internal/model"
	"resnet/internal/safetensors"
)

// initNet is cifar_resnet8 for 10 classes on the CPU, initialised from seed 1.
func initNet(t *testing.T) *model.Net {
	t.Helper()
	spec, err := SpecFor(config.ModelConfig{Arch: "cifar_resnet8"}, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	net, err := model.Build(cpu.New(), spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(net.Free)
	if err := net.Init(1); err != nil {
		t.Fatal(err)
	}
	return net
}

// setValue changes value i of the net's tensor name (its momentum buffer when momentum is set).
func setValue(t *testing.T, net *model.Net, name string, i int, v float32, momentum bool) {
	t.Helper()
	p, ok := net.Param(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	dst := p.Value
	if momentum {
		dst = p.Momentum
	}
	vals := make([]float32, p.Shape.Numel())
	if err := net.Device().Download(vals, dst); err != nil {
		t.Fatal(err)
	}
	vals[i] = v
	if err := net.Device().Upload(dst, vals); err != nil {
		t.Fatal(err)
	}
}

// A checkpoint file holding a NaN, an infinity or a negative running variance (written by a diverged run
// before such checkpoints were refused, or damaged) is refused when read, naming the file, the tensor and
// the index; eval, export and resume all read checkpoints through LoadCheckpoint.
func TestLoadCheckpointRefusesNonFiniteValues(t *testing.T) {
	net := initNet(t)
	r := NewRunDir(t.TempDir())
	good, err := r.SaveCheckpoint(net, State{Step: 4}, []byte("name: x\n"), 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tensor string
		index  int
		value  float32
		what   string
	}{
		{"layer1.0.conv1.weight", 17, float32(math.NaN()), "NaN"},
		{"optimizer.momentum_buffer.fc.bias", 3, float32(math.Inf(1)), "+Inf"},
		{"layer2.0.bn2.running_var", 5, -0.5, "-0.5 (a variance cannot be negative)"},
	} {
		f, err := safetensors.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range f.Tensors {
			if x.Name == tc.tensor {
				v, _ := x.Float32s()
				v[tc.index] = tc.value
				f.Tensors[i] = safetensors.F32(x.Name, x.Shape, v)
			}
		}
		path := r.CheckpointPath(8)
		if err := safetensors.WriteFile(path, f); err != nil {
			t.Fatal(err)
		}
		_, err = LoadCheckpoint(path)
		want := "checkpoint " + path + ": " + tc.tensor + "[" + strconv.Itoa(tc.index) + "] is " + tc.what +
			": the run had diverged when it was written, or the file is damaged; use an earlier checkpoint"
		if err == nil || err.Error() != want {
			t.Errorf("LoadCheckpoint:\n got %v\nwant %s", err, want)
		}
	}
}

// No checkpoint holding a non-finite value (or a negative running variance) is written, and the good
// checkpoints stay: rotation runs only after a checkpoint was written.
func TestSaveCheckpointRefusesNonFiniteValues(t *testing.T) {
	for _, tc := range []struct {
		tensor   string
		momentum bool
		value    float32
		want     string
	}{
		{"layer1.0.bn1.running_var", false, float32(math.NaN()), "checkpoint at step 8 not written: layer1.0.bn1.running_var[2] is NaN: the run diverged"},
		{"conv1.weight", true, float32(math.Inf(-1)), "checkpoint at step 8 not written: optimizer.momentum_buffer.conv1.weight[2] is -Inf: the run diverged"},
	} {
		net := initNet(t)
		r := NewRunDir(t.TempDir())
		good, err := r.SaveCheckpoint(net, State{Step: 4}, []byte("name: x\n"), 1)
		if err != nil {
			t.Fatal(err)
		}
		setValue(t, net, tc.tensor, 2, tc.value, tc.momentum)
		_, err = r.SaveCheckpoint(net, State{Step: 8}, []byte("name: x\n"), 1)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrDiverged) {
			t.Errorf("SaveCheckpoint:\n got %v\nwant %s (wrapping ErrDiverged)", err, tc.want)
		}
		if names, _ := r.Checkpoints(); !slices.Equal(names, []string{good}) {
			t.Errorf("checkpoints %v, want only the good one %s", names, good)
		}
	}
}
