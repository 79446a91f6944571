// This file finds this process's place in a data-parallel job from the variables its launcher set.

package dist

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DefaultPort is the master port used when the launcher names none (torchrun's default).
const DefaultPort = 29500

// Info is this process's place in the job and where rank 0 listens.
type Info struct {
	Rank       int    // 0 .. WorldSize-1, unique in the job
	LocalRank  int    // index on this node; picks the GPU
	WorldSize  int    // number of processes in the job
	MasterAddr string // host of rank 0; empty for a single process
	MasterPort int
	// PortFrom says where MasterPort came from, for messages: "MASTER_PORT", "MASTER_PORT+1" (under
	// torchrun's agent store), "RESNET_MASTER_PORT" or "the default port".
	PortFrom string
	Source   string // "torchrun", "slurm" or "single", for messages
}

// Addr is rank 0's address in host:port form.
func (in Info) Addr() string {
	return net.JoinHostPort(in.MasterAddr, strconv.Itoa(in.MasterPort))
}

// Discover reads the rank, local rank, world size and master address from torchrun's variables (RANK,
// LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), else from Slurm's (SLURM_PROCID, SLURM_LOCALID,
// SLURM_NTASKS, SLURM_NODELIST, with MASTER_ADDR and MASTER_PORT overriding the master it derives), else
// describes a single process. env is os.Getenv in the program and a map in tests.
//
// Slurm's variables count only when SLURM_PROCID is set, as srun sets it for each task: a program started
// in an salloc shell, which has SLURM_NTASKS but no SLURM_PROCID, runs alone. A batch script that starts
// the program without srun looks like rank 0 of SLURM_NTASKS and fails at the rendezvous, naming the
// ranks that never came.
func Discover(env func(string) string) (Info, error) {
	switch {
	case env("RANK") != "" || env("WORLD_SIZE") != "":
		return discoverTorchrun(env)
	case env("SLURM_PROCID") != "":
		return discoverSlurm(env)
	}
	return Info{WorldSize: 1, MasterPort: DefaultPort, PortFrom: "the default port", Source: "single"}, nil
}

func discoverTorchrun(env func(string) string) (Info, error) {
	in := Info{Source: "torchrun"}
	var err error
	if in.WorldSize, err = intVar(env, "WORLD_SIZE", 1); err != nil {
		return Info{}, err
	}
	if in.Rank, err = intVar(env, "RANK", 0); err != nil {
		return Info{}, err
	}
	// Without LOCAL_RANK the job is taken to be on one node, where the two agree.
	if in.LocalRank, err = optionalIntVar(env, "LOCAL_RANK", in.Rank); err != nil {
		return Info{}, err
	}
	return finish(env, in, "")
}

func discoverSlurm(env func(string) string) (Info, error) {
	in := Info{Source: "slurm"}
	var err error
	if in.WorldSize, err = intVar(env, "SLURM_NTASKS", 1); err != nil {
		return Info{}, err
	}
	if in.Rank, err = intVar(env, "SLURM_PROCID", 0); err != nil {
		return Info{}, err
	}
	if in.LocalRank, err = optionalIntVar(env, "SLURM_LOCALID", 0); err != nil {
		return Info{}, err
	}
	name, list := "SLURM_NODELIST", env("SLURM_NODELIST")
	if list == "" {
		name, list = "SLURM_JOB_NODELIST", env("SLURM_JOB_NODELIST")
	}
	master := ""
	if list != "" && env("MASTER_ADDR") == "" {
		if master, err = FirstHost(list); err != nil {
			return Info{}, fmt.Errorf("dist: %s=%q: %w", name, list, err)
		}
	}
	return finish(env, in, master)
}

// finish checks the rank against the world size and fills in the master, MASTER_ADDR and MASTER_PORT
// taking precedence over what the launcher's own variables gave.
func finish(env func(string) string, in Info, master string) (Info, error) {
	rankVar, worldVar := "RANK", "WORLD_SIZE"
	if in.Source == "slurm" {
		rankVar, worldVar = "SLURM_PROCID", "SLURM_NTASKS"
	}
	if in.Rank >= in.WorldSize {
		return Info{}, fmt.Errorf("dist: %s=%d must be less than %s=%d", rankVar, in.Rank, worldVar, in.WorldSize)
	}
	if a := env("MASTER_ADDR"); a != "" {
		master = a
	}
	in.MasterAddr = master
	if err := masterPort(env, &in); err != nil {
		return Info{}, err
	}
	if in.WorldSize > 1 && in.MasterAddr == "" {
		hint := "set MASTER_ADDR to the host of rank 0"
		if in.Source == "slurm" {
			hint = "set MASTER_ADDR, or run under srun so that SLURM_NODELIST is set"
		}
		return Info{}, fmt.Errorf("dist: %s=%d needs the address of rank 0 and none is set; %s", worldVar, in.WorldSize, hint)
	}
	return in, nil
}

// masterPort sets the port rank 0 listens on. It is MASTER_PORT (29500 when unset), except under
// torchrun's agent store (TORCHELASTIC_USE_AGENT_STORE=True, torchrun's default on one node and with a
// static rendezvous), where torchrun's own key-value store already listens on MASTER_PORT of the master's
// host: there it is the next port, MASTER_PORT+1. RESNET_MASTER_PORT, when set, overrides both.
func masterPort(env func(string) string, in *Info) error {
	port, err := optionalIntVar(env, "MASTER_PORT", DefaultPort)
	if err != nil {
		return err
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("dist: MASTER_PORT=%d must be a TCP port, 1 to 65535", port)
	}
	in.MasterPort, in.PortFrom = port, "MASTER_PORT"
	if env("MASTER_PORT") == "" {
		in.PortFrom = "the default port"
	}
	if in.Source == "torchrun" && env("TORCHELASTIC_USE_AGENT_STORE") == "True" {
		if port == 65535 {
			return errors.New("dist: MASTER_PORT=65535 is torchrun's store, and the rendezvous takes the next port, which does not exist; choose a lower MASTER_PORT or set RESNET_MASTER_PORT")
		}
		in.MasterPort, in.PortFrom = port+1, "MASTER_PORT+1"
	}
	if env("RESNET_MASTER_PORT") == "" {
		return nil
	}
	if port, err = intVar(env, "RESNET_MASTER_PORT", 1); err != nil {
		return err
	}
	if port > 65535 {
		return fmt.Errorf("dist: RESNET_MASTER_PORT=%d must be a TCP port, 1 to 65535", port)
	}
	in.MasterPort, in.PortFrom = port, "RESNET_MASTER_PORT"
	return nil
}

// intVar reads a required integer variable that must be at least min.
func intVar(env func(string) string, name string, min int) (int, error) {
	s := env(name)
	if s == "" {
		return 0, fmt.Errorf("dist: %s is not set (the launcher sets it together with the other rank variables)", name)
	}
	return parseVar(name, s, min)
}

// optionalIntVar reads an integer variable that must not be negative, def when unset.
func optionalIntVar(env func(string) string, name string, def int) (int, error) {
	s := env(name)
	if s == "" {
		return def, nil
	}
	return parseVar(name, s, 0)
}

func parseVar(name, s string, min int) (int, error) {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("dist: %s=%q is not an integer", name, s)
	}
	if v < min {
		return 0, fmt.Errorf("dist: %s=%d must be at least %d", name, v, min)
	}
	return v, nil
}

// FirstHost is the first host of a node list in Slurm's compressed syntax, such as "node[01-04,07],gpu3"
// (node01) or "rack[2-3]-n[08-09]" (rack2-n08). The whole list is checked, so a malformed one is an error
// even when its first host could be read.
func FirstHost(list string) (string, error) {
	hosts, err := splitNodeList(list)
	if err != nil {
		return "", err
	}
	first := ""
	for i, h := range hosts {
		name, err := firstOfPattern(h)
		if err != nil {
			return "", err
		}
		if i == 0 {
			first = name
		}
	}
	return first, nil
}

// splitNodeList splits a node list at the commas outside brackets.
func splitNodeList(list string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i, c := range list {
		switch c {
		case '[':
			if depth > 0 {
				return nil, fmt.Errorf("nested '[' at offset %d", i)
			}
			depth++
		case ']':
			if depth == 0 {
				return nil, fmt.Errorf("']' without '[' at offset %d", i)
			}
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, list[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("'[' without ']'")
	}
	parts = append(parts, list[start:])
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("empty host name")
		}
	}
	return parts, nil
}

// firstOfPattern expands the first value of every bracket group of one host pattern, checking each group.
func firstOfPattern(p string) (string, error) {
	var b strings.Builder
	for {
		open := strings.IndexByte(p, '[')
		if open < 0 {
			b.WriteString(p)
			break
		}
		end := strings.IndexByte(p, ']')
		b.WriteString(p[:open])
		first, err := firstOfRanges(p[open+1 : end])
		if err != nil {
			return "", err
		}
		b.WriteString(first)
		p = p[end+1:]
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("empty host name")
	}
	return b.String(), nil
}

// firstOfRanges checks a bracket group such as "01-04,07" and returns its first value with its padding.
func firstOfRanges(group string) (string, error) {
	first := ""
	for i, r := range strings.Split(group, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isDigits(lo) || (isRange && !isDigits(hi)) {
			return "", fmt.Errorf("range %q in [%s] is not a number or a from-to pair of numbers", r, group)
		}
		if isRange {
			a, _ := strconv.Atoi(lo)
			z, _ := strconv.Atoi(hi)
			if a > z {
				return "", fmt.Errorf("range %q in [%s] runs backwards", r, group)
			}
		}
		if i == 0 {
			first = lo
		}
	}
	return first, nil
}

func isDigits(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
