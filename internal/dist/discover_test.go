package dist

import (
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDiscover(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Info
	}{
		{"nothing set", nil, Info{WorldSize: 1, MasterPort: 29500, PortFrom: "the default port", Source: "single"}},
		{"torchrun", map[string]string{"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"},
			Info{Rank: 3, LocalRank: 1, WorldSize: 4, MasterAddr: "10.0.0.1", MasterPort: 1234, PortFrom: "MASTER_PORT", Source: "torchrun"}},
		{"torchrun default port, local rank from rank", map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h"},
			Info{Rank: 1, LocalRank: 1, WorldSize: 2, MasterAddr: "h", MasterPort: 29500, PortFrom: "the default port", Source: "torchrun"}},
		{"torchrun world of one needs no master", map[string]string{"RANK": "0", "WORLD_SIZE": "1"},
			Info{WorldSize: 1, MasterPort: 29500, PortFrom: "the default port", Source: "torchrun"}},
		{"slurm", map[string]string{"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8", "SLURM_NODELIST": "node[01-04,07],gpu3"},
			Info{Rank: 5, LocalRank: 1, WorldSize: 8, MasterAddr: "node01", MasterPort: 29500, PortFrom: "the default port", Source: "slurm"}},
		{"slurm job node list", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "gpu7,gpu9"},
			Info{WorldSize: 2, MasterAddr: "gpu7", MasterPort: 29500, PortFrom: "the default port", Source: "slurm"}},
		{"slurm with master override", map[string]string{"SLURM_PROCID": "1", "SLURM_LOCALID": "0", "SLURM_NTASKS": "2",
			"SLURM_NODELIST": "a[1-2]", "MASTER_ADDR": "head", "MASTER_PORT": "4000"},
			Info{Rank: 1, WorldSize: 2, MasterAddr: "head", MasterPort: 4000, PortFrom: "MASTER_PORT", Source: "slurm"}},
		{"an salloc shell runs alone", map[string]string{"SLURM_NTASKS": "4", "SLURM_NODELIST": "n[1-2]"},
			Info{WorldSize: 1, MasterPort: 29500, PortFrom: "the default port", Source: "single"}},
		{"torchrun wins over slurm", map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "SLURM_PROCID": "1", "SLURM_NTASKS": "4"},
			Info{WorldSize: 2, MasterAddr: "m", MasterPort: 29500, PortFrom: "the default port", Source: "torchrun"}},
		// torchrun's agent store holds MASTER_PORT: the rendezvous takes the next port.
		{"torchrun agent store", map[string]string{"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "MASTER_PORT": "29500",
			"TORCHELASTIC_USE_AGENT_STORE": "True"},
			Info{Rank: 1, LocalRank: 1, WorldSize: 2, MasterAddr: "m", MasterPort: 29501, PortFrom: "MASTER_PORT+1", Source: "torchrun"}},
		{"torchrun without the agent store", map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "MASTER_PORT": "29500",
			"TORCHELASTIC_USE_AGENT_STORE": "False"},
			Info{WorldSize: 2, MasterAddr: "m", MasterPort: 29500, PortFrom: "MASTER_PORT", Source: "torchrun"}},
		{"RESNET_MASTER_PORT wins", map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "MASTER_PORT": "29500",
			"TORCHELASTIC_USE_AGENT_STORE": "True", "RESNET_MASTER_PORT": "31000"},
			Info{WorldSize: 2, MasterAddr: "m", MasterPort: 31000, PortFrom: "RESNET_MASTER_PORT", Source: "torchrun"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Discover(envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDiscoverErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"rank not an integer", map[string]string{"RANK": "one", "WORLD_SIZE": "2", "MASTER_ADDR": "m"}, `dist: RANK="one" is not an integer`},
		{"world size not an integer", map[string]string{"RANK": "0", "WORLD_SIZE": "2.5"}, `dist: WORLD_SIZE="2.5" is not an integer`},
		{"rank missing", map[string]string{"WORLD_SIZE": "2", "MASTER_ADDR": "m"}, "dist: RANK is not set"},
		{"world size missing", map[string]string{"RANK": "0"}, "dist: WORLD_SIZE is not set"},
		{"rank too large", map[string]string{"RANK": "4", "WORLD_SIZE": "4", "MASTER_ADDR": "m"}, "dist: RANK=4 must be less than WORLD_SIZE=4"},
		{"negative rank", map[string]string{"RANK": "-1", "WORLD_SIZE": "4", "MASTER_ADDR": "m"}, "dist: RANK=-1 must be at least 0"},
		{"zero world size", map[string]string{"RANK": "0", "WORLD_SIZE": "0"}, "dist: WORLD_SIZE=0 must be at least 1"},
		{"negative local rank", map[string]string{"RANK": "0", "LOCAL_RANK": "-2", "WORLD_SIZE": "1"}, "dist: LOCAL_RANK=-2 must be at least 0"},
		{"bad port", map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "MASTER_PORT": "70000"}, "dist: MASTER_PORT=70000 must be a TCP port"},
		{"port not an integer", map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "MASTER_PORT": "http"}, `dist: MASTER_PORT="http" is not an integer`},
		{"no master", map[string]string{"RANK": "1", "WORLD_SIZE": "2"}, "dist: WORLD_SIZE=2 needs the address of rank 0 and none is set; set MASTER_ADDR"},
		{"slurm rank too large", map[string]string{"SLURM_PROCID": "2", "SLURM_NTASKS": "2", "SLURM_NODELIST": "n1"}, "dist: SLURM_PROCID=2 must be less than SLURM_NTASKS=2"},
		{"slurm no task count", map[string]string{"SLURM_PROCID": "0"}, "dist: SLURM_NTASKS is not set"},
		{"slurm no node list", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, "dist: SLURM_NTASKS=2 needs the address of rank 0"},
		{"top port under torchrun's store", map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "MASTER_PORT": "65535", "TORCHELASTIC_USE_AGENT_STORE": "True"},
			"dist: MASTER_PORT=65535 is torchrun's store, and the rendezvous takes the next port"},
		{"bad RESNET_MASTER_PORT", map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "RESNET_MASTER_PORT": "0"}, "dist: RESNET_MASTER_PORT=0 must be at least 1"},
		{"slurm bad local id", map[string]string{"SLURM_PROCID": "0", "SLURM_LOCALID": "x", "SLURM_NTASKS": "1"}, `dist: SLURM_LOCALID="x" is not an integer`},
		{"slurm malformed node list", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_NODELIST": "node[01-04"},
			`dist: SLURM_NODELIST="node[01-04": '[' without ']'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Discover(envOf(tt.env))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got error %v, want one starting %q", err, tt.want)
			}
		})
	}
}

func TestFirstHost(t *testing.T) {
	tests := []struct{ list, want, err string }{
		{"node01", "node01", ""},
		{"node[01-04,07],gpu3", "node01", ""},
		{"gpu3,node[01-04]", "gpu3", ""},
		{"node[007-010]", "node007", ""},
		{"node[3,1-2]", "node3", ""},
		{"rack[2-3]-n[08-09],x", "rack2-n08", ""},
		{"[5-6]n", "5n", ""},
		{"node-a.example.com", "node-a.example.com", ""},
		{"node[01-04", "", "'[' without ']'"},
		{"node01-04]", "", "']' without '['"},
		{"node[[1]]", "", "nested '['"},
		{"node[4-2]", "", `range "4-2" in [4-2] runs backwards`},
		{"node[a-b]", "", `range "a-b" in [a-b] is not a number`},
		{"node[1-]", "", `range "1-" in [1-] is not a number`},
		{"node[]", "", `range "" in [] is not a number`},
		{"node1,,node2", "", "empty host name"},
		{"", "", "empty host name"},
		{"n1,m[1-3,x]", "", `range "x" in [1-3,x]`},
	}
	for _, tt := range tests {
		got, err := FirstHost(tt.list)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("FirstHost(%q): error %v, want one starting %q", tt.list, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("FirstHost(%q) = %q, %v; want %q", tt.list, got, err, tt.want)
		}
	}
}
