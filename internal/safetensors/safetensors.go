// Package safetensors reads and writes the safetensors checkpoint format, so that checkpoints written here
// load in PyTorch (safetensors.torch.load_file) and files written by PyTorch load here.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON header, then the data buffer. The
// header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data
// buffer, end exclusive) and may hold "__metadata__", an object of string to string. Tensors are
// little-endian, C-contiguous and packed without gaps: every byte of the data buffer belongs to exactly
// one tensor.
package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// DType is an element type as spelled in the header.
type DType string

const (
	Bool       DType = "BOOL"
	Uint8      DType = "U8"
	Int8       DType = "I8"
	Float8E4M3 DType = "F8_E4M3"
	Float8E5M2 DType = "F8_E5M2"
	Int16      DType = "I16"
	Uint16     DType = "U16"
	Float16    DType = "F16"
	BFloat16   DType = "BF16"
	Int32      DType = "I32"
	Uint32     DType = "U32"
	Float32    DType = "F32"
	Int64      DType = "I64"
	Uint64     DType = "U64"
	Float64    DType = "F64"
)

// dtypeSizes holds the element size in bytes of every dtype this package accepts.
var dtypeSizes = map[DType]uint64{
	Bool: 1, Uint8: 1, Int8: 1, Float8E4M3: 1, Float8E5M2: 1,
	Int16: 2, Uint16: 2, Float16: 2, BFloat16: 2,
	Int32: 4, Uint32: 4, Float32: 4,
	Int64: 8, Uint64: 8, Float64: 8,
}

// Tensor is one named tensor. Data holds its elements as raw little-endian bytes in C order.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// File is the content of a safetensors file.
type File struct {
	Metadata map[string]string // nil when the file has none
	Tensors  []Tensor          // in data-buffer order
}

// Get returns the tensor called name.
func (f *File) Get(name string) (Tensor, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// F32 makes a float32 tensor holding a copy of v. A v whose length does not match shape is reported
// by Write.
func F32(name string, shape []int, v []float32) Tensor {
	data := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, DType: Float32, Shape: shape, Data: data}
}

// I64 makes an int64 tensor holding a copy of v. A v whose length does not match shape is reported
// by Write.
func I64(name string, shape []int, v []int64) Tensor {
	data := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(data[8*i:], uint64(x))
	}
	return Tensor{Name: name, DType: Int64, Shape: shape, Data: data}
}

// Float32s decodes an F32 tensor.
func (t Tensor) Float32s() ([]float32, error) {
	n, err := t.checkElements(Float32)
	if err != nil {
		return nil, err
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return v, nil
}

// Int64s decodes an I64 tensor.
func (t Tensor) Int64s() ([]int64, error) {
	n, err := t.checkElements(Int64)
	if err != nil {
		return nil, err
	}
	v := make([]int64, n)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return v, nil
}

// checkElements returns the element count of t after checking that t has dtype want and that Data
// holds exactly the bytes its shape calls for.
func (t Tensor) checkElements(want DType) (int, error) {
	if t.DType != want {
		return 0, fmt.Errorf("safetensors: tensor %q is %s, not %s", t.Name, t.DType, want)
	}
	size, err := t.byteSize()
	if err != nil {
		return 0, err
	}
	if uint64(len(t.Data)) != size {
		return 0, fmt.Errorf("safetensors: tensor %q holds %d bytes of data, but %s shape %v needs %d",
			t.Name, len(t.Data), t.DType, t.Shape, size)
	}
	return int(size / dtypeSizes[want]), nil
}

// byteSize returns how many bytes t's dtype and shape call for.
func (t Tensor) byteSize() (uint64, error) {
	elemSize, ok := dtypeSizes[t.DType]
	if !ok {
		return 0, fmt.Errorf("safetensors: tensor %q has unknown dtype %q", t.Name, t.DType)
	}
	dims := make([]uint64, len(t.Shape))
	for i, d := range t.Shape {
		if d < 0 {
			return 0, fmt.Errorf("safetensors: tensor %q has negative dimension shape[%d] = %d", t.Name, i, d)
		}
		dims[i] = uint64(d)
	}
	size, ok := shapeBytes(dims, elemSize)
	if !ok {
		return 0, fmt.Errorf("safetensors: tensor %q: %s shape %v is too large (over 2^63 bytes)", t.Name, t.DType, t.Shape)
	}
	return size, nil
}

// shapeBytes multiplies out a shape in order, as the reference implementation does, and reports false
// when a partial product or the byte count passes math.MaxInt64 (even if a later dimension is 0).
func shapeBytes(dims []uint64, elemSize uint64) (uint64, bool) {
	numel := uint64(1)
	for _, d := range dims {
		hi, lo := bits.Mul64(numel, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		numel = lo
	}
	hi, size := bits.Mul64(numel, elemSize)
	if hi != 0 || size > math.MaxInt64 {
		return 0, false
	}
	return size, true
}
