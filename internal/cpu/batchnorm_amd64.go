package cpu

import xcpu "golang.org/x/sys/cpu"

// bnAVX2 makes the batch-norm row loops run their AVX2 forms (batchnorm_amd64.s); tests clear it to
// compare them with the portable ones.
var bnAVX2 = xcpu.X86.HasAVX2

// The assembly forms; n is a multiple of 4 (the lanes) or 8 (the rows), the pointers hold n values (y and
// dz are read or written only when the flags say so).

//go:noescape
func sumLanesAVX2(acc *[4]float64, x *float32, n int)

//go:noescape
func sqDevLanesAVX2(acc *[4]float64, x *float32, n int, mean float64)

//go:noescape
func gradLanesAVX2(sdy, sdyx *[4]float64, x, dy, y *float32, n int, mean float64, relu bool)

//go:noescape
func normalizeRowAVX2(y, x, z *float32, n int, mean, scale, shift float32, add, relu bool)

//go:noescape
func gradRowAVX2(dx, x, dy, y, dz *float32, n int, mean, k, a, b float32, relu, store bool)

// sumLanes is sumLanesGo.
func sumLanes(acc *[4]float64, x []float32) {
	if !bnAVX2 || len(x) == 0 {
		sumLanesGo(acc, x)
		return
	}
	sumLanesAVX2(acc, &x[0], len(x)&^3)
}

// sqDevLanes is sqDevLanesGo.
func sqDevLanes(acc *[4]float64, x []float32, mean float64) {
	if !bnAVX2 || len(x) == 0 {
		sqDevLanesGo(acc, x, mean)
		return
	}
	sqDevLanesAVX2(acc, &x[0], len(x)&^3, mean)
}

// gradLanes is gradLanesGo.
func gradLanes(sdy, sdyx *[4]float64, x, dy, y []float32, mean float64) {
	if !bnAVX2 || len(x) == 0 {
		gradLanesGo(sdy, sdyx, x, dy, y, mean)
		return
	}
	n := len(x) &^ 3
	dy = dy[:n]
	yp := &dy[0] // not read without relu
	if y != nil {
		yp = &y[:n][0]
	}
	gradLanesAVX2(sdy, sdyx, &x[0], &dy[0], yp, n, mean, y != nil)
}

// normalizeRow is normalizeRowGo.
func normalizeRow(y, x, z []float32, mean, scale, shift float32, act bool) {
	n := 0
	if bnAVX2 {
		n = len(x) &^ 7
	}
	if n > 0 {
		y = y[:len(x)]
		zp := &x[0] // not read without z
		if z != nil {
			z = z[:len(x)]
			zp = &z[0]
		}
		normalizeRowAVX2(&y[0], &x[0], zp, n, mean, scale, shift, z != nil, act)
		y, x = y[n:], x[n:]
		if z != nil {
			z = z[n:]
		}
	}
	normalizeRowGo(y, x, z, mean, scale, shift, act)
}

// gradRow is gradRowGo.
func gradRow(dx, x, dy, y, dz []float32, mean, k, a, b float32) {
	n := 0
	if bnAVX2 {
		n = len(x) &^ 7
	}
	if n > 0 {
		dx, dy = dx[:len(x)], dy[:len(x)]
		yp, dzp := &x[0], &dx[0] // not touched without y or dz
		if y != nil {
			y = y[:len(x)]
			yp = &y[0]
		}
		if dz != nil {
			dz = dz[:len(x)]
			dzp = &dz[0]
		}
		gradRowAVX2(&dx[0], &x[0], &dy[0], yp, dzp, n, mean, k, a, b, y != nil, dz != nil)
		dx, x, dy = dx[n:], x[n:], dy[n:]
		if y != nil {
			y = y[n:]
		}
		if dz != nil {
			dz = dz[n:]
		}
	}
	gradRowGo(dx, x, dy, y, dz, mean, k, a, b)
}
