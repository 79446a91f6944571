//go:build !amd64

package cpu

// Other architectures run the portable forms of the batch-norm row loops.

func sumLanes(acc *[4]float64, x []float32) { sumLanesGo(acc, x) }

func sqDevLanes(acc *[4]float64, x []float32, mean float64) { sqDevLanesGo(acc, x, mean) }

func gradLanes(sdy, sdyx *[4]float64, x, dy, y []float32, mean float64) {
	gradLanesGo(sdy, sdyx, x, dy, y, mean)
}

func normalizeRow(y, x, z []float32, mean, scale, shift float32, act bool) {
	normalizeRowGo(y, x, z, mean, scale, shift, act)
}

func gradRow(dx, x, dy, y, dz []float32, mean, k, a, b float32) {
	gradRowGo(dx, x, dy, y, dz, mean, k, a, b)
}
