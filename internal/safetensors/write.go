package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"resnet/internal/atomicfile"
)

// metadataKey is the header key reserved for string metadata; no tensor may use it as its name.
const metadataKey = "__metadata__"

// headerEntry is one tensor's header record; field order matches what the Python library writes.
type headerEntry struct {
	DType       DType     `json:"dtype"`
	Shape       []int     `json:"shape"`
	DataOffsets [2]uint64 `json:"data_offsets"`
}

// Write writes f to w. Tensors are laid out in the data buffer in the order of f.Tensors; the header's
// keys are sorted, so the same File always gives the same bytes. Loaders read a tensor in place only
// when its offset is a multiple of its element size, so put wider dtypes first when mixing them.
func Write(w io.Writer, f *File) error {
	header, err := encodeHeader(f)
	if err != nil {
		return err
	}
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := w.Write(prefix[:]); err != nil {
		return fmt.Errorf("safetensors: write header length: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("safetensors: write header: %w", err)
	}
	for _, t := range f.Tensors {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("safetensors: write tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// WriteFile writes f to path, replacing any file there only once the new one is complete on disk.
func WriteFile(path string, f *File) error {
	return atomicfile.WriteFile(path, 0o644, func(w io.Writer) error { return Write(w, f) })
}

// encodeHeader checks f and returns its JSON header padded with spaces to a multiple of 8 bytes, so the
// data buffer starts 8-byte aligned in the file.
func encodeHeader(f *File) ([]byte, error) {
	entries := make(map[string]any, len(f.Tensors)+1)
	if len(f.Metadata) > 0 {
		for k, v := range f.Metadata {
			// encoding/json would silently turn invalid UTF-8 into U+FFFD.
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("safetensors: metadata %q: %q is not valid UTF-8", k, v)
			}
		}
		entries[metadataKey] = f.Metadata
	}
	var offset uint64
	for _, t := range f.Tensors {
		if t.Name == metadataKey {
			return nil, fmt.Errorf("safetensors: tensor name %q is reserved for metadata", metadataKey)
		}
		if !utf8.ValidString(t.Name) {
			return nil, fmt.Errorf("safetensors: tensor name %q is not valid UTF-8", t.Name)
		}
		if _, dup := entries[t.Name]; dup {
			return nil, fmt.Errorf("safetensors: duplicate tensor name %q", t.Name)
		}
		size, err := t.byteSize()
		if err != nil {
			return nil, err
		}
		if uint64(len(t.Data)) != size {
			return nil, fmt.Errorf("safetensors: tensor %q holds %d bytes of data, but %s shape %v needs %d",
				t.Name, len(t.Data), t.DType, t.Shape, size)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{} // a scalar: the header needs [], not null
		}
		entries[t.Name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: [2]uint64{offset, offset + size}}
		offset += size
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep names like "a<b" readable; both spellings are valid JSON
	if err := enc.Encode(entries); err != nil {
		return nil, fmt.Errorf("safetensors: encode header: %w", err)
	}
	header := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	for len(header)%8 != 0 {
		header = append(header, ' ')
	}
	return header, nil
}
