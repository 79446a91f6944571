package safetensors

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"
)

// FuzzRead checks that Read never panics, that every rejection is a FormatError, and that whatever it
// accepts survives a Write/Read round trip unchanged.
func FuzzRead(f *testing.F) {
	var valid bytes.Buffer
	if err := Write(&valid, sampleFile()); err != nil {
		f.Fatal(err)
	}
	f.Add(valid.Bytes())
	f.Add(rawFile(`{}`, ""))
	f.Add(rawFile(`{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},`+
		`"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, "abcdefgh"))
	f.Add(rawFile(`{"a":{"dtype":"U8","shape":[0,18446744073709551615],"data_offsets":[0,0]}}`, ""))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, "abcd"))
	f.Add(rawFile(`{"__metadata__":{"k":"v","k":1}}`, ""))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			var formatErr *FormatError
			if !errors.As(err, &formatErr) {
				t.Fatalf("Read error %v is not a *FormatError", err)
			}
			return
		}
		var rewritten bytes.Buffer
		if err := Write(&rewritten, file); err != nil {
			t.Fatalf("Write of a file Read accepted: %v", err)
		}
		again, err := Read(bytes.NewReader(rewritten.Bytes()), int64(rewritten.Len()))
		if err != nil {
			t.Fatalf("Read of rewritten file: %v", err)
		}
		if !maps.Equal(again.Metadata, file.Metadata) { // nil and empty compare equal
			t.Errorf("metadata changed in round trip: %v, then %v", file.Metadata, again.Metadata)
		}
		if len(again.Tensors) != len(file.Tensors) {
			t.Fatalf("round trip changed the tensor count from %d to %d", len(file.Tensors), len(again.Tensors))
		}
		for i, want := range file.Tensors {
			got := again.Tensors[i]
			if got.Name != want.Name || got.DType != want.DType || !bytes.Equal(got.Data, want.Data) ||
				!slices.Equal(got.Shape, want.Shape) {
				t.Errorf("tensor %d changed in round trip: %+v, then %+v", i, want, got)
			}
		}
	})
}
