package safetensors

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxHeaderSize is the reference implementation's limit; a larger length means a corrupt or foreign file.
const maxHeaderSize = 100_000_000

// FormatError reports a malformed file: what is wrong and the byte offset in the file where it was found.
// For problems in a tensor's header entry the offset points into the header; for gaps and overlaps it
// points into the data buffer.
type FormatError struct {
	Path   string // empty when reading from a stream
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("safetensors: %s (at byte %d)", e.Msg, e.Offset)
	}
	return fmt.Sprintf("safetensors: %s (at byte %d of %s)", e.Msg, e.Offset, e.Path)
}

// ReadFile reads the safetensors file at path.
func ReadFile(path string) (*File, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return read(bufio.NewReaderSize(file, 1<<20), info.Size(), path)
}

// Read reads a safetensors file of size bytes from r. The data buffer must end exactly at size.
func Read(r io.Reader, size int64) (*File, error) {
	return read(r, size, "")
}

// tensorEntry is a tensor's header record after validation, with where it sits in the file.
type tensorEntry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end uint64
}

func read(r io.Reader, size int64, path string) (*File, error) {
	fail := func(offset int64, format string, args ...any) error {
		return &FormatError{Path: path, Offset: offset, Msg: fmt.Sprintf(format, args...)}
	}
	if size < 8 {
		return nil, fail(0, "file is %d bytes, too short for the 8-byte header length", size)
	}
	var prefix [8]byte
	if n, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, readError(err, fail, int64(n), "the 8-byte header length")
	}
	headerLen := binary.LittleEndian.Uint64(prefix[:])
	if headerLen > uint64(size-8) {
		return nil, fail(0, "header length %d runs past the end of the %d-byte file: truncated, or not a safetensors file", headerLen, size)
	}
	if headerLen > maxHeaderSize {
		return nil, fail(0, "header length %d exceeds the %d-byte limit", headerLen, maxHeaderSize)
	}
	header := make([]byte, headerLen)
	if n, err := io.ReadFull(r, header); err != nil {
		return nil, readError(err, fail, 8+int64(n), fmt.Sprintf("the %d-byte header", headerLen))
	}
	dataStart := 8 + int64(headerLen)
	dataLen := uint64(size - dataStart)

	metadata, entries, err := parseHeader(header, dataLen, fail)
	if err != nil {
		return nil, err
	}
	if err := checkLayout(entries, dataLen, dataStart, fail); err != nil {
		return nil, err
	}

	data := make([]byte, dataLen)
	if n, err := io.ReadFull(r, data); err != nil {
		return nil, readError(err, fail, dataStart+int64(n), fmt.Sprintf("%d bytes of tensor data", dataLen))
	}
	f := &File{Metadata: metadata, Tensors: make([]Tensor, len(entries))}
	for i, e := range entries {
		f.Tensors[i] = Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: data[e.begin:e.end:e.end]}
	}
	return f, nil
}

// readError turns a short read into a truncation FormatError and wraps any other I/O error.
func readError(err error, fail func(int64, string, ...any) error, offset int64, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fail(offset, "file truncated while reading %s", what)
	}
	return fmt.Errorf("safetensors: reading %s: %w", what, err)
}

// parseHeader decodes the header and checks each entry on its own; checkLayout then checks how the
// entries share the data buffer. It walks the JSON token by token because decoding into a map would
// silently drop duplicate names.
func parseHeader(header []byte, dataLen uint64, fail func(int64, string, ...any) error) (map[string]string, []tensorEntry, error) {
	if !utf8.Valid(header) {
		bad := 0
		for bad < len(header) {
			r, size := utf8.DecodeRune(header[bad:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			bad += size
		}
		return nil, nil, fail(8+int64(bad), "header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	jsonError := func(decodeErr error) error {
		// The Decoder's error offsets are off by one in some states; Unmarshal's scanner reports the
		// bad byte consistently (its offset counts the bad byte itself).
		err := json.Unmarshal(header, new(any))
		var syntax *json.SyntaxError
		switch {
		case errors.As(err, &syntax) && err.Error() == "unexpected end of JSON input":
			return fail(8+int64(len(header)), "header is not valid JSON: it ends before the JSON does")
		case errors.As(err, &syntax) && syntax.Offset >= 1:
			return fail(8+syntax.Offset-1, "header is not valid JSON: %v", err)
		}
		return fail(8, "header is not valid JSON: %v", decodeErr)
	}

	tok, err := dec.Token()
	if err != nil {
		return nil, nil, jsonError(err)
	}
	if tok != json.Delim('{') {
		return nil, nil, fail(8+skipJSONSpace(header, 0, ""), "header is not a JSON object")
	}
	var (
		metadata    map[string]string
		hasMetadata bool
		entries     []tensorEntry
		seen        = map[string]bool{}
	)
	for dec.More() {
		keyStart := 8 + skipJSONSpace(header, dec.InputOffset(), ",")
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, jsonError(err)
		}
		key := tok.(string) // inside an object the decoder yields only string keys
		valueStart := 8 + skipJSONSpace(header, dec.InputOffset(), ":")
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, nil, jsonError(err)
		}
		if key == metadataKey {
			if hasMetadata {
				return nil, nil, fail(keyStart, "duplicate %q", metadataKey)
			}
			hasMetadata = true
			if metadata, err = parseMetadata(value, valueStart, fail); err != nil {
				return nil, nil, err
			}
			continue
		}
		if seen[key] {
			return nil, nil, fail(keyStart, "duplicate tensor name %q", key)
		}
		seen[key] = true
		entry, err := parseTensorEntry(key, value, valueStart, dataLen, fail)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, entry)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, jsonError(err)
	}
	if rest := skipJSONSpace(header, dec.InputOffset(), ""); rest < int64(len(header)) {
		return nil, nil, fail(8+rest, "header has data after its JSON object")
	}
	return metadata, entries, nil
}

// skipJSONSpace returns the offset of the first byte at or after from that is neither JSON whitespace
// nor one of the separators in also.
func skipJSONSpace(b []byte, from int64, also string) int64 {
	for from < int64(len(b)) && strings.IndexByte(" \t\r\n"+also, b[from]) >= 0 {
		from++
	}
	return from
}

// parseMetadata decodes "__metadata__", which must be an object of string to string (or null).
func parseMetadata(value json.RawMessage, valueStart int64, fail func(int64, string, ...any) error) (map[string]string, error) {
	if string(value) == "null" {
		return nil, nil
	}
	if value[0] != '{' {
		return nil, fail(valueStart, "%q is %s, want an object of string to string", metadataKey, jsonKind(value[0]))
	}
	metadata := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.Token() // the opening brace, already checked
	for dec.More() {
		keyStart := valueStart + skipJSONSpace(value, dec.InputOffset(), ",")
		tok, _ := dec.Token() // the value is valid JSON: the outer decoder has read it
		key := tok.(string)
		if _, dup := metadata[key]; dup {
			return nil, fail(keyStart, "duplicate %q key %q", metadataKey, key)
		}
		itemStart := skipJSONSpace(value, dec.InputOffset(), ":")
		var item json.RawMessage
		dec.Decode(&item)
		if item[0] != '"' {
			return nil, fail(valueStart+itemStart, "%q key %q is %s, want a string", metadataKey, key, jsonKind(item[0]))
		}
		var s string
		json.Unmarshal(item, &s)
		metadata[key] = s
	}
	return metadata, nil
}

// jsonKind names the kind of JSON value that starts with b, for error messages.
func jsonKind(b byte) string {
	switch b {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// parseTensorEntry decodes and checks one tensor's header record against its dtype and the data buffer.
func parseTensorEntry(name string, value json.RawMessage, valueStart int64, dataLen uint64, fail func(int64, string, ...any) error) (tensorEntry, error) {
	entry := tensorEntry{name: name}
	failf := func(format string, args ...any) error {
		return fail(valueStart, "tensor %q: %s", name, fmt.Sprintf(format, args...))
	}
	if value[0] != '{' {
		return entry, failf("entry is %s, want an object with dtype, shape and data_offsets", jsonKind(value[0]))
	}
	var fields map[string]json.RawMessage
	json.Unmarshal(value, &fields) // valid JSON object: cannot fail
	for _, field := range []string{"dtype", "shape", "data_offsets"} {
		if _, ok := fields[field]; !ok {
			return entry, failf("missing %q", field)
		}
	}

	rawDType := fields["dtype"]
	if rawDType[0] != '"' {
		return entry, failf("dtype is %s, want a string", jsonKind(rawDType[0]))
	}
	var dtype string
	json.Unmarshal(rawDType, &dtype)
	elemSize, ok := dtypeSizes[DType(dtype)]
	if !ok {
		return entry, failf("unknown dtype %q", dtype)
	}
	entry.dtype = DType(dtype)

	dims, err := nonNegativeInts(fields["shape"])
	if err != nil {
		return entry, failf("shape %s: %v", fields["shape"], err)
	}
	entry.shape = make([]int, len(dims))
	for i, d := range dims {
		entry.shape[i] = int(d)
	}
	size, ok := shapeBytes(dims, elemSize)
	if !ok {
		return entry, failf("%s shape %v is too large (over 2^63 bytes)", dtype, entry.shape)
	}

	offsets, err := nonNegativeInts(fields["data_offsets"])
	if err == nil && len(offsets) != 2 {
		err = fmt.Errorf("has %d elements, want [begin, end]", len(offsets))
	}
	if err != nil {
		return entry, failf("data_offsets %s: %v", fields["data_offsets"], err)
	}
	entry.begin, entry.end = offsets[0], offsets[1]
	switch {
	case entry.begin > entry.end:
		return entry, failf("data_offsets [%d, %d] end before they begin", entry.begin, entry.end)
	case entry.end-entry.begin != size:
		return entry, failf("data_offsets [%d, %d] span %d bytes, but %s shape %v needs %d",
			entry.begin, entry.end, entry.end-entry.begin, dtype, entry.shape, size)
	case entry.end > dataLen:
		return entry, failf("data_offsets [%d, %d] run past the end of the %d-byte data buffer",
			entry.begin, entry.end, dataLen)
	}
	return entry, nil
}

// nonNegativeInts decodes a JSON array of integers that each fit in an int and are not negative.
func nonNegativeInts(value json.RawMessage) ([]uint64, error) {
	if value[0] != '[' {
		return nil, fmt.Errorf("is %s, want an array of integers", jsonKind(value[0]))
	}
	var items []json.RawMessage
	json.Unmarshal(value, &items) // valid JSON array: cannot fail
	ints := make([]uint64, len(items))
	for i, item := range items {
		n, err := strconv.ParseInt(string(item), 10, strconv.IntSize)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("element %d is %s, want a non-negative integer", i, item)
		}
		ints[i] = uint64(n)
	}
	return ints, nil
}

// checkLayout sorts entries into data-buffer order and checks that they tile the buffer exactly:
// no gaps, no overlaps, nothing left over at the end.
func checkLayout(entries []tensorEntry, dataLen uint64, dataStart int64, fail func(int64, string, ...any) error) error {
	slices.SortStableFunc(entries, func(a, b tensorEntry) int {
		if a.begin != b.begin {
			return cmp.Compare(a.begin, b.begin)
		}
		return cmp.Compare(a.end, b.end)
	})
	var covered uint64
	for i, e := range entries {
		switch {
		case e.begin > covered:
			return fail(dataStart+int64(covered), "gap in the data buffer: no tensor covers bytes [%d, %d) (next is tensor %q)",
				covered, e.begin, e.name)
		case e.begin < covered:
			prev := entries[i-1]
			return fail(dataStart+int64(e.begin), "tensor %q data_offsets [%d, %d] overlap tensor %q data_offsets [%d, %d]",
				e.name, e.begin, e.end, prev.name, prev.begin, prev.end)
		}
		covered = e.end
	}
	if covered != dataLen {
		return fail(dataStart+int64(covered), "gap in the data buffer: no tensor covers bytes [%d, %d) at its end",
			covered, dataLen)
	}
	return nil
}
