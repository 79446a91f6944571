//go:build !amd64

package cpu

// packLanes8 has no portable fast form: packBPadded interleaves the lanes itself.
func packLanes8(dst []float32, ldd int, src []float32, off *[8]int, rows, cols, srcStride int) bool {
	return false
}
