package cpu

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"resnet/internal/backend"
	"resnet/internal/backend/backendtest"
)

// A synchronised batch norm whose batch is cut into slices, one per rank, each rank on a device of its
// own in a goroutine, against one batch norm on the whole batch.
var bnSyncCases = []struct {
	b     bnCase
	sizes []int // images per rank
}{
	{bnCase{n: 5, c: 3, h: 3, w: 4}, []int{3, 2}},
	{bnCase{n: 6, c: 4, h: 3, w: 3, relu: true}, []int{2, 2, 2}},
	{bnCase{n: 7, c: 2, h: 3, w: 3, relu: true, cz: 2, hz: 3, wz: 3}, []int{3, 2, 2}}, // identity shortcut
	{bnCase{n: 4, c: 6, h: 3, w: 4, relu: true, cz: 2, hz: 6, wz: 8}, []int{2, 2}},    // option A, stride 2
	{bnCase{n: 6, c: 4, h: 2, w: 3, cz: 4, hz: 6, wz: 9}, []int{1, 3, 2}},             // stride 3, one image on a rank
}

// bnOutputs are everything a forward and backward write.
type bnOutputs struct {
	y, smean, sinv, rm, rv, dx, dz, dgamma, dbeta []float32
}

func readBNOutputs(t *testing.T, f *bnFixture) bnOutputs {
	o := bnOutputs{y: values(t, f.t.Y), smean: values(t, f.t.SaveMean), sinv: values(t, f.t.SaveInvStd),
		rm: values(t, f.t.RunningMean), rv: values(t, f.t.RunningVar), dx: values(t, f.g.DX),
		dgamma: values(t, f.g.DGamma), dbeta: values(t, f.g.DBeta)}
	if f.g.DZ.Valid() {
		o.dz = values(t, f.g.DZ)
	}
	return o
}

// imageSlice returns images [lo, hi) of an (N, ...) tensor's values, per values an image.
func imageSlice(v []float32, per, lo, hi int) []float32 { return v[lo*per : hi*per] }

// runSyncedBN runs a forward and a backward of case b on each rank's slice of the batch of whole (a
// fixture on another device), and returns each rank's outputs and the group's exchange count.
func runSyncedBN(t *testing.T, b bnCase, sizes []int, whole *bnFixture) ([]bnOutputs, int) {
	devs := make([]backend.Device, len(sizes))
	fixtures := make([]*bnFixture, len(sizes))
	lo := 0
	for r, n := range sizes {
		d := NewWithWorkers(1 + r%2)
		t.Cleanup(d.Close)
		devs[r] = d
		rb := b
		rb.n = n
		f := newBNFixture(t, d, rb, 1)
		per, zper := b.c*b.h*b.w, b.cz*b.hz*b.wz
		must(t, d.Upload(f.t.X, imageSlice(whole.xv, per, lo, lo+n)))
		must(t, d.Upload(f.g.DY, imageSlice(values(t, whole.g.DY), per, lo, lo+n)))
		if b.residual() {
			must(t, d.Upload(f.t.Z, imageSlice(whole.zv, zper, lo, lo+n)))
		}
		must(t, d.Upload(f.t.Gamma, values(t, whole.t.Gamma)))
		must(t, d.Upload(f.t.Beta, values(t, whole.t.Beta)))
		must(t, d.Upload(f.t.RunningMean, whole.rm))
		must(t, d.Upload(f.t.RunningVar, whole.rv))
		fixtures[r] = f
		lo += n
	}
	group, syncers := backendtest.NewSyncGroup(devs)
	errs := make([]error, len(sizes))
	var wg sync.WaitGroup
	for r, f := range fixtures {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := f.p
			p.Sync = syncers[r]
			if errs[r] = devs[r].BatchNormForwardTraining(p, f.t); errs[r] == nil {
				errs[r] = devs[r].BatchNormBackward(p, f.g)
			}
		}()
	}
	wg.Wait()
	out := make([]bnOutputs, len(sizes))
	for r, f := range fixtures {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		out[r] = readBNOutputs(t, f)
	}
	return out, group.Rounds()
}

// bnSyncTolerance bounds, per channel, how far synchronised batch norm on slices may land from one batch
// norm on the whole batch. The whole batch's statistics are float64 from start to end; the synchronised
// ones cross the ranks as float32: each rank's mean and M2 are rounded once (relative u = 2^-24), and the
// merge's squared mean differences carry that rounding of a rank's mean, |mean|*u, relative to a spread of
// std, so the variance and 1/std move by a few u*(1 + |mean|/std). The backward's sums are rounded on each
// rank and added in float32 over the W ranks, a relative error of (W+2)*u of the sum of their magnitudes.
// Every output is then a few float32 operations on those constants, each rounding once more. The
// factor 8 covers those few roundings; the test reports the largest share of the bound it used.
type bnSyncTolerance struct {
	smean, sinv, rm, rv, y, dx, dgamma, dbeta []float64
}

func newBNSyncTolerance(b bnCase, world int, xv, zv, dy, gamma, beta, rm, rv []float32) bnSyncTolerance {
	const u = 0x1p-24
	mean, variance := naiveStats(b, xv)
	m := float64(b.n * b.h * b.w)
	maxZ := 0.0
	for _, v := range zv {
		maxZ = max(maxZ, math.Abs(float64(v)))
	}
	tol := bnSyncTolerance{}
	ranks := float64(world + 2)
	for c := 0; c < b.c; c++ {
		std := math.Sqrt(variance[c])
		inv := 1 / math.Sqrt(variance[c]+1e-5)
		spread := 2 + math.Abs(mean[c])/std
		scale := math.Abs(float64(gamma[c])) * inv
		var maxDev, maxDY, sumDY, sumDYDev float64
		for n := 0; n < b.n; n++ {
			for i := 0; i < b.h*b.w; i++ {
				at := (n*b.c+c)*b.h*b.w + i
				dev, g := math.Abs(float64(xv[at])-mean[c]), math.Abs(float64(dy[at]))
				maxDev, maxDY = max(maxDev, dev), max(maxDY, g)
				sumDY += g
				sumDYDev += g * dev
			}
		}
		newRM := 0.9*float64(rm[c]) + 0.1*mean[c]
		newRV := 0.9*float64(rv[c]) + 0.1*variance[c]*m/(m-1)
		tol.smean = append(tol.smean, 8*u*(math.Abs(mean[c])+std))
		tol.sinv = append(tol.sinv, 8*u*spread*inv)
		tol.rm = append(tol.rm, 8*u*(math.Abs(newRM)+math.Abs(mean[c])+std))
		tol.rv = append(tol.rv, 8*u*spread*(newRV+variance[c]))
		tol.y = append(tol.y, 8*u*(maxDev*scale*spread+scale*(math.Abs(mean[c])+std)+math.Abs(float64(beta[c]))+maxZ))
		tol.dx = append(tol.dx, 8*u*ranks*spread*scale*(maxDY+sumDY/m+maxDev*inv*inv*sumDYDev/m))
		tol.dgamma = append(tol.dgamma, 8*u*ranks*spread*inv*sumDYDev)
		tol.dbeta = append(tol.dbeta, 8*u*ranks*sumDY)
	}
	return tol
}

// checkWithin fails when |got - want| exceeds tol[channel of element i] and returns the largest share of
// its tolerance an element used. Elements are (N, C, per) or (C).
func checkWithin(t *testing.T, what string, got, want []float32, tol []float64, per int) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	used := 0.0
	for i := range got {
		c := (i / per) % len(tol)
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if !(d <= tol[c]) {
			t.Fatalf("%s: element %d is %v, want %v (tolerance %.3g)", what, i, got[i], want[i], tol[c])
		}
		used = max(used, d/tol[c])
	}
	return used
}

func TestSyncedBatchNormMatchesWholeBatch(t *testing.T) {
	for i, sc := range bnSyncCases {
		b := sc.b
		t.Run(fmt.Sprintf("%v_ranks%v", b, sc.sizes), func(t *testing.T) {
			d := NewWithWorkers(2)
			defer d.Close()
			whole := newBNFixture(t, d, b, uint64(500+i))
			dy := values(t, whole.g.DY)
			must(t, d.BatchNormForwardTraining(whole.p, whole.t))
			must(t, d.BatchNormBackward(whole.p, whole.g))
			want := readBNOutputs(t, whole)
			tol := newBNSyncTolerance(b, len(sc.sizes), whole.xv, whole.zv, dy, values(t, whole.t.Gamma),
				values(t, whole.t.Beta), whole.rm, whole.rv)

			ranks, rounds := runSyncedBN(t, b, sc.sizes, whole)
			if rounds != 2 {
				t.Fatalf("the ranks exchanged %d times, want 2 (forward and backward)", rounds)
			}
			var y, dx, dz []float32
			dgamma, dbeta := make([]float32, b.c), make([]float32, b.c)
			used := 0.0
			for r, o := range ranks {
				y, dx, dz = append(y, o.y...), append(dx, o.dx...), append(dz, o.dz...)
				for c := range dgamma {
					dgamma[c] += o.dgamma[c]
					dbeta[c] += o.dbeta[c]
				}
				for _, v := range []struct {
					name      string
					got, want []float32
					tol       []float64
				}{{"saved mean", o.smean, want.smean, tol.smean}, {"saved inverse std", o.sinv, want.sinv, tol.sinv},
					{"running mean", o.rm, want.rm, tol.rm}, {"running var", o.rv, want.rv, tol.rv}} {
					used = max(used, checkWithin(t, fmt.Sprintf("rank %d: %s", r, v.name), v.got, v.want, v.tol, 1))
				}
				// Every rank holds the same statistics and the same parameter gradients, to the bit.
				for _, v := range [][2][]float32{{o.smean, ranks[0].smean}, {o.sinv, ranks[0].sinv}, {o.rm, ranks[0].rm},
					{o.rv, ranks[0].rv}, {o.dgamma, ranks[0].dgamma}, {o.dbeta, ranks[0].dbeta}} {
					if !slices.Equal(bits(v[0]), bits(v[1])) {
						t.Fatalf("rank %d's statistics or parameter gradients differ from rank 0's", r)
					}
				}
			}
			hw := b.h * b.w
			used = max(used, checkWithin(t, "y", y, want.y, tol.y, hw))
			used = max(used, checkWithin(t, "dx", dx, want.dx, tol.dx, hw))
			// The ranks' shares of dgamma and dbeta add up to the whole batch's.
			used = max(used, checkWithin(t, "dgamma summed over the ranks", dgamma, want.dgamma, tol.dgamma, 1))
			used = max(used, checkWithin(t, "dbeta summed over the ranks", dbeta, want.dbeta, tol.dbeta, 1))
			if b.residual() && !slices.Equal(bits(dz), bits(want.dz)) {
				t.Fatal("dz differs from the whole batch's")
			}
			t.Logf("largest share of a tolerance used: %.3f", used)

			again, _ := runSyncedBN(t, b, sc.sizes, whole)
			for r := range ranks {
				if fmt.Sprint(bitsOf(ranks[r])) != fmt.Sprint(bitsOf(again[r])) {
					t.Fatalf("rank %d: a second run gave other bits", r)
				}
			}
		})
	}
}

// A syncer of one rank is local batch norm, to the bit, and exchanges nothing.
func TestSyncedBatchNormOneRankIsLocal(t *testing.T) {
	b := bnSyncCases[3].b
	d := NewWithWorkers(2)
	defer d.Close()
	whole := newBNFixture(t, d, b, 77)
	ranks, rounds := runSyncedBN(t, b, []int{b.n}, whole)
	must(t, d.BatchNormForwardTraining(whole.p, whole.t))
	must(t, d.BatchNormBackward(whole.p, whole.g))
	if rounds != 0 {
		t.Fatalf("one rank exchanged %d times, want 0", rounds)
	}
	if fmt.Sprint(bitsOf(ranks[0])) != fmt.Sprint(bitsOf(readBNOutputs(t, whole))) {
		t.Fatal("a syncer of one rank changed the results")
	}
}

func bits(v []float32) []uint32 {
	b := make([]uint32, len(v))
	for i, x := range v {
		b[i] = math.Float32bits(x)
	}
	return b
}

func bitsOf(o bnOutputs) [][]uint32 {
	return [][]uint32{bits(o.y), bits(o.smean), bits(o.sinv), bits(o.rm), bits(o.rv), bits(o.dx), bits(o.dz),
		bits(o.dgamma), bits(o.dbeta)}
}
