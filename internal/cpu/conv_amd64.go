package cpu

import xcpu "golang.org/x/sys/cpu"

// packLanesAVX2 makes packLanes8 run its assembly form; tests clear it to run the portable path.
var packLanesAVX2 = xcpu.X86.HasAVX2

//go:noescape
func packLanes8AVX2(dst *float32, ldd int, src *float32, off *[8]int, rows, cols, srcStride int)

// packLanes8 writes src[off[q] + r*srcStride + c] to dst[(r*cols+c)*ldd + q] for q < 8, r < rows and
// c < cols, a multiple of 8, and reports whether it did; it declines where the CPU lacks AVX2.
func packLanes8(dst []float32, ldd int, src []float32, off *[8]int, rows, cols, srcStride int) bool {
	if !packLanesAVX2 || cols%8 != 0 || ldd < 8 {
		return false
	}
	if rows <= 0 || cols <= 0 {
		return true
	}
	last := (rows-1)*srcStride + cols
	for _, o := range off {
		if o < 0 || o+last > len(src) {
			panic("cpu: packed lanes outside their image")
		}
	}
	_ = dst[(rows*cols-1)*ldd+7]
	packLanes8AVX2(&dst[0], ldd, &src[0], off, rows, cols, srcStride)
	return true
}
