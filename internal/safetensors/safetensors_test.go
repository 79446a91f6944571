package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// sampleFile holds one tensor of each kind a checkpoint needs: weights, a scalar, an empty tensor,
// integer counters and raw half-precision bytes.
func sampleFile() *File {
	return &File{
		Metadata: map[string]string{"format": "pt", "epoch": "7", "arch": "resnet50"},
		Tensors: []Tensor{
			F32("conv1.weight", []int{2, 1, 1, 3}, []float32{1, -2, 3.5, 0, 1e-8, -1e30}),
			I64("bn1.num_batches_tracked", []int{}, []int64{-42}),
			I64("step", []int{3}, []int64{1, 1 << 40, -1}),
			F32("empty", []int{0, 3}, nil),
			{Name: "fc.bias.bf16", DType: BFloat16, Shape: []int{2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0}},
			{Name: "mask", DType: Uint8, Shape: []int{3}, Data: []byte{1, 0, 255}},
		},
	}
}

func encode(t *testing.T, f *File) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, f); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func decode(t *testing.T, b []byte) *File {
	t.Helper()
	f, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return f
}

// sameFile compares files treating nil and empty shapes and data as equal.
func sameFile(t *testing.T, got, want *File) {
	t.Helper()
	if !reflect.DeepEqual(got.Metadata, want.Metadata) {
		t.Errorf("metadata = %v, want %v", got.Metadata, want.Metadata)
	}
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("got %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for i, g := range got.Tensors {
		w := want.Tensors[i]
		if g.Name != w.Name || g.DType != w.DType || len(g.Shape) != len(w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("tensor %d = %+v, want %+v", i, g, w)
			continue
		}
		for j := range g.Shape {
			if g.Shape[j] != w.Shape[j] {
				t.Errorf("tensor %q shape = %v, want %v", g.Name, g.Shape, w.Shape)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	want := sampleFile()
	got := decode(t, encode(t, want))
	sameFile(t, got, want)

	weights, ok := got.Get("conv1.weight")
	if !ok {
		t.Fatal(`Get("conv1.weight") found nothing`)
	}
	values, err := weights.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if wantValues := []float32{1, -2, 3.5, 0, 1e-8, -1e30}; !reflect.DeepEqual(values, wantValues) {
		t.Errorf("conv1.weight = %v, want %v", values, wantValues)
	}
	step, _ := got.Get("step")
	counts, err := step.Int64s()
	if err != nil {
		t.Fatal(err)
	}
	if wantCounts := []int64{1, 1 << 40, -1}; !reflect.DeepEqual(counts, wantCounts) {
		t.Errorf("step = %v, want %v", counts, wantCounts)
	}
	if _, ok := got.Get("missing"); ok {
		t.Error(`Get("missing") found a tensor`)
	}
}

func TestRoundTripWithoutMetadataOrTensors(t *testing.T) {
	b := encode(t, &File{})
	if want := "\x08\x00\x00\x00\x00\x00\x00\x00{}      "; string(b) != want {
		t.Errorf("empty file = %q, want %q", b, want)
	}
	f := decode(t, b)
	if f.Metadata != nil || len(f.Tensors) != 0 {
		t.Errorf("empty file read back as %+v", f)
	}
}

func TestWriteFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	want := sampleFile()
	if err := WriteFile(path, want); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	sameFile(t, got, want)
}

func TestWriteIsReproducible(t *testing.T) {
	first := encode(t, sampleFile())
	for range 20 { // metadata is a map: iteration order changes from run to run
		if again := encode(t, sampleFile()); !bytes.Equal(again, first) {
			t.Fatalf("second Write gave different bytes:\n%q\n%q", first, again)
		}
	}
}

func TestWriteExactBytes(t *testing.T) {
	f := &File{
		Metadata: map[string]string{"epoch": "1"},
		Tensors:  []Tensor{F32("w", []int{2}, []float32{1, 2}), I64("a<b", nil, []int64{3})},
	}
	header := `{"__metadata__":{"epoch":"1"},` +
		`"a<b":{"dtype":"I64","shape":[],"data_offsets":[8,16]},` +
		`"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	for len(header)%8 != 0 {
		header += " "
	}
	want := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	want = append(want, header...)
	want = append(want, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40) // 1.0f, 2.0f
	want = append(want, 3, 0, 0, 0, 0, 0, 0, 0)
	if got := encode(t, f); !bytes.Equal(got, want) {
		t.Errorf("Write =\n%q\nwant\n%q", got, want)
	}
}

func TestHeaderIsAlignedTo8(t *testing.T) {
	for n := range 17 {
		name := strings.Repeat("x", n)
		b := encode(t, &File{Tensors: []Tensor{{Name: name, DType: Uint8, Shape: []int{1}, Data: []byte{9}}}})
		headerLen := binary.LittleEndian.Uint64(b)
		if headerLen%8 != 0 {
			t.Errorf("name length %d: header length %d is not a multiple of 8", n, headerLen)
		}
		header := string(b[8 : 8+headerLen])
		if trimmed := strings.TrimRight(header, " "); !strings.HasSuffix(trimmed, "}") || len(header)-len(trimmed) >= 8 {
			t.Errorf("name length %d: header %q is not JSON padded with fewer than 8 spaces", n, header)
		}
		if got := b[8+headerLen]; got != 9 {
			t.Errorf("name length %d: data starts with %d, want 9", n, got)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name   string
		tensor Tensor
		want   string
	}{
		{"short data", F32("w", []int{2, 2}, []float32{1, 2, 3}),
			`safetensors: tensor "w" holds 12 bytes of data, but F32 shape [2 2] needs 16`},
		{"unknown dtype", Tensor{Name: "w", DType: "F33", Shape: []int{1}, Data: []byte{1}},
			`safetensors: tensor "w" has unknown dtype "F33"`},
		{"negative dimension", Tensor{Name: "w", DType: Uint8, Shape: []int{2, -1}},
			`safetensors: tensor "w" has negative dimension shape[1] = -1`},
		{"reserved name", F32("__metadata__", []int{1}, []float32{1}),
			`safetensors: tensor name "__metadata__" is reserved for metadata`},
		{"invalid UTF-8 name", F32("w\xff", []int{1}, []float32{1}),
			`safetensors: tensor name "w\xff" is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(&bytes.Buffer{}, &File{Tensors: []Tensor{tt.tensor}})
			if err == nil || err.Error() != tt.want {
				t.Errorf("Write error = %v, want %s", err, tt.want)
			}
		})
	}

	dup := &File{Tensors: []Tensor{F32("w", []int{1}, []float32{1}), F32("w", []int{1}, []float32{2})}}
	if err := Write(&bytes.Buffer{}, dup); err == nil || err.Error() != `safetensors: duplicate tensor name "w"` {
		t.Errorf("Write with duplicate names: error = %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	i64 := I64("step", []int{1}, []int64{1})
	if _, err := i64.Float32s(); err == nil || err.Error() != `safetensors: tensor "step" is I64, not F32` {
		t.Errorf("Float32s on I64: error = %v", err)
	}
	short := Tensor{Name: "w", DType: Float32, Shape: []int{2}, Data: make([]byte, 4)}
	if _, err := short.Float32s(); err == nil || err.Error() != `safetensors: tensor "w" holds 4 bytes of data, but F32 shape [2] needs 8` {
		t.Errorf("Float32s on short data: error = %v", err)
	}
	if _, err := short.Int64s(); err == nil || err.Error() != `safetensors: tensor "w" is F32, not I64` {
		t.Errorf("Int64s on F32: error = %v", err)
	}
}

// rawFile assembles a file from a header written by hand, without padding, so tests can place bytes
// exactly: the header starts at byte 8 and the data buffer at 8+len(header).
func rawFile(header, data string) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestReadErrors(t *testing.T) {
	f32x1 := func(begin, end int) string {
		return `{"dtype":"F32","shape":[1],"data_offsets":[` + strconv.Itoa(begin) + `,` + strconv.Itoa(end) + `]}`
	}
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"too short", []byte{1, 2, 3},
			"file is 3 bytes, too short for the 8-byte header length (at byte 0)"},
		{"header past end", append(binary.LittleEndian.AppendUint64(nil, 1000), "{}"...),
			"header length 1000 runs past the end of the 10-byte file: truncated, or not a safetensors file (at byte 0)"},
		{"invalid UTF-8", rawFile("{\"a\xff\":1}", ""),
			"header is not valid UTF-8 (at byte 11)"},
		{"invalid JSON", rawFile(`{"a": }`, ""),
			"header is not valid JSON: invalid character '}' looking for beginning of value (at byte 14)"},
		{"invalid JSON in an entry", rawFile(`{"a":{"dtype":"F32","shape":[1,]}}`, ""),
			"header is not valid JSON: invalid character ']' looking for beginning of value (at byte 39)"},
		{"key not a string", rawFile(`{x}`, ""),
			"header is not valid JSON: invalid character 'x' looking for beginning of object key string (at byte 9)"},
		{"unterminated JSON", rawFile(`{"a": {"dtype"`, ""),
			"header is not valid JSON: it ends before the JSON does (at byte 22)"},
		{"not an object", rawFile(` [1, 2]`, ""),
			"header is not a JSON object (at byte 9)"},
		{"data after JSON", rawFile(`{}  {}`, ""),
			"header has data after its JSON object (at byte 12)"},
		{"entry not an object", rawFile(`{"a": 5}`, ""),
			`tensor "a": entry is a number, want an object with dtype, shape and data_offsets (at byte 14)`},
		{"missing field", rawFile(`{"a":{"dtype":"F32","shape":[]}}`, ""),
			`tensor "a": missing "data_offsets" (at byte 13)`},
		{"dtype not a string", rawFile(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, "abcd"),
			`tensor "a": dtype is a number, want a string (at byte 13)`},
		{"unknown dtype", rawFile(`{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}`, "abcd"),
			`tensor "a": unknown dtype "F33" (at byte 13)`},
		{"shape not an array", rawFile(`{"a":{"dtype":"F32","shape":"2x2","data_offsets":[0,16]}}`, ""),
			`tensor "a": shape "2x2": is a string, want an array of integers (at byte 13)`},
		{"negative dimension", rawFile(`{"a":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,4]}}`, "abcd"),
			`tensor "a": shape [2,-3]: element 1 is -3, want a non-negative integer (at byte 13)`},
		{"fractional dimension", rawFile(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, "abcd"),
			`tensor "a": shape [1.5]: element 0 is 1.5, want a non-negative integer (at byte 13)`},
		{"dimension overflows int", rawFile(`{"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}}`, "abcd"),
			`tensor "a": shape [9223372036854775808]: element 0 is 9223372036854775808, want a non-negative integer (at byte 13)`},
		{"shape too large", rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, "abcd"),
			`tensor "a": F32 shape [4294967296 4294967296] is too large (over 2^63 bytes) (at byte 13)`},
		{"data_offsets not a pair", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, "abcd"),
			`tensor "a": data_offsets [0]: has 1 elements, want [begin, end] (at byte 13)`},
		{"negative data_offsets", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, "abcd"),
			`tensor "a": data_offsets [-4,0]: element 0 is -4, want a non-negative integer (at byte 13)`},
		{"data_offsets reversed", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, "abcd"),
			`tensor "a": data_offsets [4, 0] end before they begin (at byte 13)`},
		{"size mismatch", rawFile(`{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}`, "abcdefghijkl"),
			`tensor "a": data_offsets [0, 12] span 12 bytes, but F32 shape [2 2] needs 16 (at byte 13)`},
		{"offsets past buffer", rawFile(`{"a":`+f32x1(4, 8)+`}`, "abcd"),
			`tensor "a": data_offsets [4, 8] run past the end of the 4-byte data buffer (at byte 13)`},
		{"overlap", rawFile(`{"a":`+f32x1(0, 4)+`,"b":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}}`, "abcdefghij"),
			`tensor "b" data_offsets [2, 10] overlap tensor "a" data_offsets [0, 4] (at byte 118)`},
		{"gap between tensors", rawFile(`{"b":`+f32x1(8, 12)+`,"a":`+f32x1(0, 4)+`}`, "abcdefghijkl"),
			`gap in the data buffer: no tensor covers bytes [4, 8) (next is tensor "b") (at byte 120)`},
		{"gap at start", rawFile(`{"a":`+f32x1(4, 8)+`}`, "abcdefgh"),
			`gap in the data buffer: no tensor covers bytes [0, 4) (next is tensor "a") (at byte 62)`},
		{"gap at end", rawFile(`{"a":`+f32x1(0, 4)+`}`, "abcdefgh"),
			`gap in the data buffer: no tensor covers bytes [4, 8) at its end (at byte 66)`},
		{"data but no tensors", rawFile(`{}`, "abcd"),
			`gap in the data buffer: no tensor covers bytes [0, 4) at its end (at byte 10)`},
		{"duplicate tensor", rawFile(`{"a":`+f32x1(0, 4)+`, "a":`+f32x1(0, 4)+`}`, "abcd"),
			`duplicate tensor name "a" (at byte 63)`},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, ""),
			`duplicate "__metadata__" (at byte 27)`},
		{"metadata not an object", rawFile(`{"__metadata__":["epoch"]}`, ""),
			`"__metadata__" is an array, want an object of string to string (at byte 24)`},
		{"metadata value not a string", rawFile(`{"__metadata__": {"arch": "resnet50", "epoch": 3}}`, ""),
			`"__metadata__" key "epoch" is a number, want a string (at byte 55)`},
		{"metadata value an object", rawFile(`{"__metadata__":{"epoch":{"n":3}}}`, ""),
			`"__metadata__" key "epoch" is an object, want a string (at byte 33)`},
		{"duplicate metadata key", rawFile(`{"__metadata__":{"epoch":"1" , "epoch":"2"}}`, ""),
			`duplicate "__metadata__" key "epoch" (at byte 39)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.file), int64(len(tt.file)))
			var formatErr *FormatError
			if !errors.As(err, &formatErr) {
				t.Fatalf("Read error = %v, want a *FormatError", err)
			}
			if want := "safetensors: " + tt.want; err.Error() != want {
				t.Errorf("Read error:\n got %s\nwant %s", err, want)
			}
		})
	}
}

func TestReadHeaderLengthLimit(t *testing.T) {
	prefix := binary.LittleEndian.AppendUint64(nil, 100_000_001)
	// The size promises a big enough file; the limit must be checked before anything past the prefix is read.
	_, err := Read(bytes.NewReader(prefix), 200_000_000)
	want := "safetensors: header length 100000001 exceeds the 100000000-byte limit (at byte 0)"
	if err == nil || err.Error() != want {
		t.Errorf("Read error:\n got %v\nwant %s", err, want)
	}
}

func TestReadTruncatedStream(t *testing.T) {
	full := encode(t, sampleFile())
	headerEnd := 8 + int(binary.LittleEndian.Uint64(full))
	tests := []struct {
		name string
		keep int
		want string
	}{
		{"in the length", 5, "file truncated while reading the 8-byte header length (at byte 5)"},
		{"in the header", 20, "file truncated while reading the " + strconv.Itoa(headerEnd-8) + "-byte header (at byte 20)"},
		{"in the data", len(full) - 3, "file truncated while reading " + strconv.Itoa(len(full)-headerEnd) +
			" bytes of tensor data (at byte " + strconv.Itoa(len(full)-3) + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The caller claims the full size but the stream ends early.
			_, err := Read(bytes.NewReader(full[:tt.keep]), int64(len(full)))
			if want := "safetensors: " + tt.want; err == nil || err.Error() != want {
				t.Errorf("Read error:\n got %v\nwant %s", err, want)
			}
		})
	}
}

func TestReadFileTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	f := &File{Tensors: []Tensor{F32("a", []int{2}, []float32{1, 2}), F32("b", []int{2}, []float32{3, 4})}}
	full := encode(t, f)
	if err := os.WriteFile(path, full[:len(full)-2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	want := `safetensors: tensor "b": data_offsets [8, 16] run past the end of the 14-byte data buffer (at byte 66 of ` + path + ")"
	if err == nil || err.Error() != want {
		t.Errorf("ReadFile error:\n got %v\nwant %s", err, want)
	}
}

func TestReadFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.safetensors")
	_, err := ReadFile(path)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadFile error = %v, want a not-exist error naming %s", err, path)
	}
}

// TestReadPrettyHeader reads a header laid out the way a person or another writer might: indented,
// metadata last, fields reordered, an unknown field, and null metadata.
func TestReadPrettyHeader(t *testing.T) {
	header := `{
  "b": { "shape": [ 1 ], "data_offsets": [ 4, 12 ], "dtype": "I64", "comment": "ignored" },
  "a": { "dtype": "F32", "shape": [], "data_offsets": [0, 4] },
  "__metadata__" : null
}`
	data := "\x00\x00\x80\x3f" + "\x05\x00\x00\x00\x00\x00\x00\x00"
	got := decode(t, rawFile(header, data))
	want := &File{Tensors: []Tensor{F32("a", []int{}, []float32{1}), I64("b", []int{1}, []int64{5})}}
	sameFile(t, got, want)
}
