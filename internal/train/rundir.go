package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"resnet/internal/atomicfile"
	"resnet/internal/model"
	"resnet/internal/safetensors"
)

// ErrRunExists is returned for a folder that already holds a run where a new one was to start.
var ErrRunExists = errors.New("already holds a run")

// ErrRunInUse is returned when another process holds the run folder's lock.
var ErrRunInUse = errors.New("the run folder is in use")

// RunDir is a run folder, and the one place that knows its layout:
//
//	config.yaml                              the resolved config the run trains with
//	metrics.jsonl                            one Metrics line per evaluation
//	reproducibility.json                     what the numbers depend on besides the config (Reproducibility)
//	checkpoints/step-NNNNNNNNN.safetensors   the newest checkpoints, by optimizer step
//
//	lock                                     held (flock) by the process that writes the run
//
// A process that writes the run takes the lock first (Lock), so two processes never share a run folder.
type RunDir struct{ path string }

// NewRunDir names the run folder at path; nothing is read or created.
func NewRunDir(path string) RunDir { return RunDir{path: path} }

// Path is the folder itself.
func (r RunDir) Path() string { return r.path }

// ConfigPath is the run's resolved config.
func (r RunDir) ConfigPath() string { return filepath.Join(r.path, "config.yaml") }

// MetricsPath is the run's metrics log, one JSON line per evaluation.
func (r RunDir) MetricsPath() string { return filepath.Join(r.path, "metrics.jsonl") }

// ReproducibilityPath is the record of the device, libraries, settings and algorithms of the run's latest
// process.
func (r RunDir) ReproducibilityPath() string { return filepath.Join(r.path, "reproducibility.json") }

// CheckpointDir is the folder of the run's checkpoints.
func (r RunDir) CheckpointDir() string { return filepath.Join(r.path, "checkpoints") }

// CheckpointPath is where the checkpoint taken after step optimizer steps goes.
func (r RunDir) CheckpointPath(step int64) string {
	return filepath.Join(r.CheckpointDir(), fmt.Sprintf("step-%09d.safetensors", step))
}

// LockPath is the file whose flock marks the process writing the run.
func (r RunDir) LockPath() string { return filepath.Join(r.path, "lock") }

// RunLock is a held run-folder lock.
type RunLock struct{ f *os.File }

// Unlock releases the lock (the process's end releases it too).
func (l *RunLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Lock takes the run folder for this process, creating the folder if needed: an exclusive lock that the
// OS releases when the process dies, so a killed run never leaves a stale one. A folder another process
// holds is an error naming that process's PID. With the lock held, the temporary files that a process
// killed in the middle of an atomic write left behind are removed.
func (r RunDir) Lock() (*RunLock, error) {
	if err := os.MkdirAll(r.path, 0o755); err != nil {
		return nil, err
	}
	f, err := lockFile(r.LockPath())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.path, err)
	}
	if err := r.removeStaleTemps(); err != nil {
		f.Close()
		return nil, err
	}
	return &RunLock{f: f}, nil
}

// removeStaleTemps deletes the .NAME.tmp-* files of interrupted atomic writes in the folder and its
// checkpoints folder.
func (r RunDir) removeStaleTemps() error {
	for _, dir := range []string{r.path, r.CheckpointDir()} {
		temps, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
		if err != nil {
			return err
		}
		for _, t := range temps {
			if err := os.Remove(t); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// HoldsRun reports whether the folder holds a run: metrics or checkpoints.
func (r RunDir) HoldsRun() bool {
	for _, p := range []string{r.MetricsPath(), r.CheckpointDir()} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// CheckNew returns an error wrapping ErrRunExists when the folder already holds a run.
func (r RunDir) CheckNew() error {
	if r.HoldsRun() {
		return fmt.Errorf("%s %w", r.path, ErrRunExists)
	}
	return nil
}

// Create makes the folder of a new run and writes its config, refusing a folder that holds a run.
func (r RunDir) Create(configYAML []byte) error {
	if err := r.CheckNew(); err != nil {
		return err
	}
	if err := os.MkdirAll(r.path, 0o755); err != nil {
		return err
	}
	return r.WriteConfig(configYAML)
}

// WriteConfig replaces the run's config.yaml atomically.
func (r RunDir) WriteConfig(configYAML []byte) error {
	return atomicfile.WriteBytes(r.ConfigPath(), configYAML, 0o644)
}

// WriteReproducibility replaces reproducibility.json atomically.
func (r RunDir) WriteReproducibility(rec Reproducibility) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(r.ReproducibilityPath(), append(b, '\n'), 0o644)
}

// AppendMetrics adds one line to metrics.jsonl and syncs it.
func (r RunDir) AppendMetrics(m Metrics) error {
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(r.MetricsPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadMetrics parses metrics.jsonl; errors name the file and line. A missing file is an error that
// errors.Is matches with os.ErrNotExist.
func (r RunDir) ReadMetrics() ([]Metrics, error) {
	path := r.MetricsPath()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Metrics
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var m Metrics
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, i+1, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// MetricsSize is the length of metrics.jsonl in bytes, 0 before the first evaluation.
func (r RunDir) MetricsSize() (int64, error) {
	fi, err := os.Stat(r.MetricsPath())
	switch {
	case err == nil:
		return fi.Size(), nil
	case errors.Is(err, os.ErrNotExist):
		return 0, nil
	}
	return 0, err
}

// TruncateMetrics cuts metrics.jsonl back to size bytes, the length it had when the checkpoint being
// resumed was taken.
func (r RunDir) TruncateMetrics(size int64) error {
	path := r.MetricsPath()
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) && size == 0 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if fi.Size() < size {
		return fmt.Errorf("resume: %s is %d bytes, shorter than the %d the checkpoint recorded", path, fi.Size(), size)
	}
	if size > 0 {
		if err := endsLine(path, size); err != nil {
			return err
		}
	}
	return os.Truncate(path, size)
}

// endsLine checks that byte size-1 of the file ends a line, so that cutting the file there never leaves
// half a JSON line.
func endsLine(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if b[0] != '\n' {
		return fmt.Errorf("resume: the checkpoint records %d bytes of %s, which is not the end of a line; the checkpoint metadata is damaged", size, path)
	}
	return nil
}

// SaveCheckpoint writes the net's weights, BN statistics and momentum buffers with the run state and
// config to CheckpointPath(st.Step) (atomically), rewrites config.yaml to match it, then deletes all but the
// newest keep checkpoints.
func (r RunDir) SaveCheckpoint(net *model.Net, st State, configYAML []byte, keep int, extra ...safetensors.Tensor) (string, error) {
	f, err := encodeCheckpoint(net, st, configYAML, extra)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(r.CheckpointDir(), 0o755); err != nil {
		return "", err
	}
	path := r.CheckpointPath(st.Step)
	if err := safetensors.WriteFile(path, f); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	// config.yaml describes the newest checkpoint: the --set changes of a resumed run reach it only now.
	if err := r.WriteConfig(configYAML); err != nil {
		return "", err
	}
	return path, r.PruneCheckpoints(keep)
}

// Checkpoints lists the run's checkpoint files, oldest first.
func (r RunDir) Checkpoints() ([]string, error) { return listCheckpoints(r.CheckpointDir()) }

// NewestCheckpoint is the run's latest checkpoint file.
func (r RunDir) NewestCheckpoint() (string, error) { return newestCheckpoint(r.CheckpointDir()) }

// PruneCheckpoints deletes all but the newest keep checkpoints.
func (r RunDir) PruneCheckpoints(keep int) error {
	names, err := r.Checkpoints()
	if err != nil {
		return err
	}
	for len(names) > keep {
		if err := os.Remove(names[0]); err != nil {
			return err
		}
		names = names[1:]
	}
	return nil
}

// OpenCheckpoint reads the checkpoint at path: a .safetensors file, or the newest checkpoint of a run
// folder. When a folder's newest checkpoint is unreadable, the error says so and names the newest intact
// one.
func OpenCheckpoint(path string) (*Checkpoint, error) {
	file, err := FindCheckpoint(path)
	if err != nil {
		return nil, err
	}
	ck, err := LoadCheckpoint(file)
	if err == nil {
		return ck, nil
	}
	names, lerr := listCheckpoints(filepath.Dir(file))
	if lerr != nil || file == path {
		return nil, err
	}
	for i := len(names) - 2; i >= 0; i-- {
		if _, oerr := LoadCheckpoint(names[i]); oerr == nil {
			return nil, fmt.Errorf("%w; it is the newest of %s, whose newest intact checkpoint is %s (give that file)", err, path, names[i])
		}
	}
	return nil, fmt.Errorf("%w; no older checkpoint of %s is intact either", err, path)
}

// FindCheckpoint resolves a checkpoint path: a .safetensors file as given, or a run folder (or its
// checkpoints folder), whose newest checkpoint is returned.
func FindCheckpoint(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if !fi.IsDir() {
		return path, nil
	}
	dir := NewRunDir(path).CheckpointDir()
	if _, err := os.Stat(dir); err != nil {
		dir = path // the checkpoints folder itself
	}
	return newestCheckpoint(dir)
}

// listCheckpoints lists the step-*.safetensors files of a checkpoints folder, oldest first.
func listCheckpoints(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasPrefix(e.Name(), "step-") && strings.HasSuffix(e.Name(), ".safetensors") {
			names = append(names, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(names) // zero-padded step numbers sort in time order
	return names, nil
}

func newestCheckpoint(dir string) (string, error) {
	names, err := listCheckpoints(dir)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if len(names) == 0 {
		return "", fmt.Errorf("checkpoint: no step-*.safetensors checkpoint in %s", dir)
	}
	return names[len(names)-1], nil
}

// ResumePoint is where a resumed run continues: the newest checkpoint that reads back intact, and the
// config to continue with (that checkpoint's; config.yaml before the first checkpoint).
type ResumePoint struct {
	// Checkpoint is nil when the run stopped before its first checkpoint: it then starts over from step 0
	// with its config.yaml.
	Checkpoint *Checkpoint
	Config     []byte
	Label      string // where Config came from, for error messages
	// Skipped says, newest first, which newer checkpoints could not be read and why.
	Skipped []string
	// listing is the checkpoint list the point was chosen from; the trainer checks it again under the lock.
	listing []string
}

// ResumePoint finds where the run in the folder continues. A folder with neither config.yaml nor
// checkpoints is not a run; a run whose every checkpoint is unreadable is an error naming the newest.
func (r RunDir) ResumePoint() (*ResumePoint, error) {
	if fi, err := os.Stat(r.path); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("resume: %s is not a run folder (no such directory)", r.path)
	}
	names, err := r.Checkpoints()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("resume: %w", err)
	}
	rp := &ResumePoint{listing: names}
	newest := ""
	for i := len(names) - 1; i >= 0; i-- {
		ck, err := LoadCheckpoint(names[i])
		if err == nil {
			rp.Checkpoint, rp.Config, rp.Label = ck, ck.Config, names[i]+" (config metadata)"
			return rp, nil
		}
		if newest == "" {
			newest = err.Error()
		}
		if i == 0 {
			return nil, fmt.Errorf("resume: no checkpoint of %s reads back intact; the newest: %s", r.path, newest)
		}
		rp.Skipped = append(rp.Skipped, fmt.Sprintf("%s is unreadable (%v); using the one before it", filepath.Base(names[i]), err))
	}
	b, err := os.ReadFile(r.ConfigPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("resume: %s is not a run folder (it has no config.yaml and no checkpoints)", r.path)
	}
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	rp.Config, rp.Label = b, r.ConfigPath()
	return rp, nil
}

// stillCurrent checks, under the run's lock, that no checkpoint came or went since the point was chosen.
func (rp *ResumePoint) stillCurrent(r RunDir) error {
	names, err := r.Checkpoints()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("resume: %w", err)
	}
	if !slices.Equal(names, rp.listing) {
		return fmt.Errorf("resume: the checkpoints of %s changed while this run was starting (another process wrote them); resume again", r.path)
	}
	return nil
}
