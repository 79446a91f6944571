// This file checks an estimate of the memory something needs against what may be used, and words the
// refusal.

package sysmem

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Part is one share of an estimate.
type Part struct {
	Name  string // "activations", "parameters", "data loaders", ...
	Bytes int64
	// Host marks memory that stays on the host when the network runs on a GPU (loader batches, host
	// copies of results).
	Host bool
}

// Need is an estimate of the memory something needs, by part.
type Need []Part

// Total is the sum of the parts (Saturated when it overflows).
func (n Need) Total() int64 {
	var t int64
	for _, p := range n {
		t = Add(t, p.Bytes)
	}
	return t
}

func (n Need) String() string {
	var parts []string
	for _, p := range n {
		if p.Bytes > 0 {
			parts = append(parts, p.Name+" "+Format(p.Bytes))
		}
	}
	return strings.Join(parts, ", ")
}

// filter keeps the parts whose Host flag is host.
func (n Need) filter(host bool) Need {
	var out Need
	for _, p := range n {
		if p.Host == host {
			out = append(out, p)
		}
	}
	return out
}

// Budget is what may be used: host memory, and a GPU's memory when the network runs on one.
type Budget struct {
	Host Limit
	// Device is the GPU's free memory; nil when the network runs in host memory.
	Device *Limit
}

// Refuse checks need against the budget and returns nil when it fits (or no limit is known), else a
// *TooLargeError holding the parts counted against the limit exceeded. The caller fills in which setting
// drives the need and what to do.
func (b Budget) Refuse(need Need) *TooLargeError {
	check := func(n Need, l Limit, onDevice bool) *TooLargeError {
		if l.Known() && n.Total() > l.Bytes {
			return &TooLargeError{Need: n, Limit: l, OnDevice: onDevice}
		}
		return nil
	}
	if b.Device == nil {
		return check(need, b.Host, false)
	}
	if e := check(need.filter(false), *b.Device, true); e != nil {
		return e
	}
	return check(need.filter(true), b.Host, false)
}

// Fits reports whether need fits the budget.
func (b Budget) Fits(need Need) bool { return b.Refuse(need) == nil }

// CheckSetting refuses a setting of value value whose need does not fit the budget, with the advice to
// lower it to the largest value in [1, value] that fits (the need growing with the value). It returns
// nil when the need fits, and need's error when there is one.
func (b Budget) CheckSetting(setting string, value int, what string, need func(v int) (Need, error)) (*TooLargeError, error) {
	n, err := need(value)
	if err != nil {
		return nil, err
	}
	e := b.Refuse(n)
	if e == nil {
		return nil, nil
	}
	e.Setting, e.Value, e.What = setting, strconv.Itoa(value), what
	top := LargestFitting(value, func(v int) bool {
		n, err := need(v)
		return err == nil && b.Fits(n)
	})
	e.Fits = top
	if top > 0 {
		e.Advice = fmt.Sprintf("lower %s to at most %s", setting, Approx(top))
	} else {
		e.Advice = "it does not fit even at 1"
	}
	return e, nil
}

// TooLargeError refuses a setting whose memory need exceeds the limit. Its text reads
// `train.batch_size 100000000 needs about 9.3 TiB for a training step of resnet18 at 224x224 (activations
// 9.1 TiB, ...); the limit is 22.8 GiB (MemAvailable); lower train.batch_size to at most ~2400`.
type TooLargeError struct {
	Setting string // the config key or flag that drives the need
	Value   string // its value
	What    string // what the memory is for: "a training step of resnet18 at 224x224"
	Need    Need   // the parts counted against Limit
	Limit   Limit
	// OnDevice says that Limit is the GPU's memory.
	OnDevice bool
	Advice   string // what to do: "lower train.batch_size to at most ~2400"
	// Fits is the largest value of the setting that fits, when CheckSetting found one (else 0).
	Fits int
}

// Reason is the text after the setting.
func (e *TooLargeError) Reason() string {
	total := e.Need.Total()
	amount := "about " + Format(total)
	if total == Saturated {
		amount = "more than " + Format(total)
	}
	if e.OnDevice {
		amount += " of GPU memory"
	}
	msg := fmt.Sprintf("%s needs %s for %s (%s); the limit is %s", e.Value, amount, e.What, e.Need, e.Limit)
	if e.Advice != "" {
		msg += "; " + e.Advice
	}
	return msg
}

func (e *TooLargeError) Error() string { return e.Setting + " " + e.Reason() }

// LargestFitting is the largest n in [1, hi] for which fits holds, assuming it holds up to some n and not
// beyond; 0 when it holds for none.
func LargestFitting(hi int, fits func(n int) bool) int {
	return sort.Search(hi, func(i int) bool { return !fits(i + 1) })
}

// Approx writes n for advice: exact below 100, else rounded down to two significant digits with a
// tilde ("~2400").
func Approx(n int) string { return ApproxMultiple(n, 1) }

// ApproxMultiple is Approx(n) rounded down to a multiple of m, for a value that must divide by m (a
// global batch among m ranks): ApproxMultiple(2437, 7) is "~2394"; below 100 it is exact, rounded down
// to a multiple of m.
func ApproxMultiple(n, m int) string {
	m = max(m, 1)
	if n < 100 {
		return strconv.Itoa(n / m * m)
	}
	unit := 1
	for n/unit >= 100 {
		unit *= 10
	}
	v := n / unit * unit / m * m
	if v == 0 {
		v = n / m * m
	}
	return "~" + strconv.Itoa(v)
}
