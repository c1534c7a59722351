package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"unsafe"
)

// DType is a safetensors element type.
type DType string

// The element types gpt2d reads and writes.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I8   DType = "I8"
)

// Size returns the width of one element in bytes, or 0 if unknown.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	case I8, "U8", "BOOL":
		return 1
	case "F64", "I64", "U64":
		return 8
	case "I32", "U32":
		return 4
	case "I16", "U16":
		return 2
	}
	return 0
}

// Tensor is one named array inside a weights file. Data aliases the
// file's memory map (or heap memory for converted tensors) and must not be
// modified.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// Len returns the number of elements.
func (t Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// F32 returns the tensor's values as float32. F32 data is returned without
// copying when it is 4-byte aligned; F16 and BF16 are widened into a new
// slice.
func (t Tensor) F32() ([]float32, error) {
	n := t.Len()
	switch t.DType {
	case F32:
		if n == 0 {
			return []float32{}, nil
		}
		if uintptr(unsafe.Pointer(&t.Data[0]))%4 == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(&t.Data[0])), n), nil
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
		return out, nil
	case BF16:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
		}
		return out, nil
	case F16:
		out := make([]float32, n)
		for i := range out {
			out[i] = HalfToFloat32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %s: dtype %s cannot be read as float32", t.Name, t.DType)
}

// U16 returns 2-byte data (F16 or BF16 bits) without copying when aligned.
func (t Tensor) U16() ([]uint16, error) {
	if t.DType != F16 && t.DType != BF16 {
		return nil, fmt.Errorf("tensor %s: dtype %s is not a 16-bit float", t.Name, t.DType)
	}
	n := t.Len()
	if n == 0 {
		return []uint16{}, nil
	}
	if uintptr(unsafe.Pointer(&t.Data[0]))%2 == 0 {
		return unsafe.Slice((*uint16)(unsafe.Pointer(&t.Data[0])), n), nil
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(t.Data[2*i:])
	}
	return out, nil
}

// I8s returns int8 data without copying.
func (t Tensor) I8s() ([]int8, error) {
	if t.DType != I8 {
		return nil, fmt.Errorf("tensor %s: dtype %s is not I8", t.Name, t.DType)
	}
	if len(t.Data) == 0 {
		return []int8{}, nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&t.Data[0])), len(t.Data)), nil
}

// maxHeaderSize bounds the JSON header a file may declare (100 MB, as the
// reference implementation does).
const maxHeaderSize = 100 << 20

// File is an open safetensors file, memory-mapped read-only.
// Its tensors stay valid until Close; a File is safe for concurrent reads.
type File struct {
	Path     string
	Metadata map[string]string
	Tensors  map[string]Tensor
	// DataStart is the offset of the first data byte in the file.
	DataStart int64
	data      []byte
	end       int64 // end of the last tensor, relative to DataStart
	unmap     func() error
}

type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// OpenSafetensors memory-maps and validates a safetensors file: header
// size, JSON, dtypes, and that every tensor's byte range matches its shape
// and lies inside the file.
func OpenSafetensors(path string) (*File, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f, raw, err := parseHeader(data)
	if err == nil {
		err = f.addTensors(raw)
	}
	if err != nil {
		unmap()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.Path = path
	f.unmap = unmap
	return f, nil
}

// parseHeader reads a safetensors header and its __metadata__, returning
// the tensor entries still undecoded so that a caller can check the
// metadata first.
func parseHeader(data []byte) (*File, map[string]json.RawMessage, error) {
	if len(data) < 8 {
		return nil, nil, fmt.Errorf("truncated safetensors file (%d bytes)", len(data))
	}
	hlen := binary.LittleEndian.Uint64(data)
	if hlen > maxHeaderSize || hlen > uint64(len(data)-8) {
		return nil, nil, fmt.Errorf("safetensors header length %d is invalid for a %d-byte file (truncated?)", hlen, len(data))
	}
	f := &File{Tensors: map[string]Tensor{}, DataStart: int64(8 + hlen), data: data}
	raw, err := decodeHeader(data[8:8+hlen], &f.Metadata)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors header: %w", err)
	}
	return f, raw, nil
}

// decodeHeader splits a header into its tensor entries, left undecoded,
// and its __metadata__, decoded into meta. It streams through the JSON
// rather than unmarshalling it whole, which would scan the metadata (a
// gpt2d file carries megabytes of tokenizer there) twice as often.
func decodeHeader(hdr []byte, meta *map[string]string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	raw := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string) // object keys are strings
		if key == "__metadata__" {
			if err := dec.Decode(meta); err != nil {
				return nil, fmt.Errorf("__metadata__: %w", err)
			}
			continue
		}
		var msg json.RawMessage
		if err := dec.Decode(&msg); err != nil {
			return nil, fmt.Errorf("tensor %s: %w", key, err)
		}
		raw[key] = msg
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the header object")
	}
	return raw, nil
}

// addTensors decodes the header's tensor entries into views of the data.
func (f *File) addTensors(raw map[string]json.RawMessage) error {
	body := f.data[f.DataStart:]
	for name, msg := range raw {
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		size := e.DType.Size()
		if size == 0 {
			return fmt.Errorf("tensor %s: unknown dtype %q", name, e.DType)
		}
		n := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt64/int64(d)/8) {
				return fmt.Errorf("tensor %s: invalid shape %v", name, e.Shape)
			}
			n *= int64(d)
		}
		lo, hi := e.DataOffsets[0], e.DataOffsets[1]
		if lo < 0 || hi < lo || hi > int64(len(body)) {
			return fmt.Errorf("tensor %s: data offsets [%d,%d] outside the %d data bytes (file truncated?)", name, lo, hi, len(body))
		}
		if hi-lo != n*int64(size) {
			return fmt.Errorf("tensor %s: %d bytes for shape %v of %s (want %d)", name, hi-lo, e.Shape, e.DType, n*int64(size))
		}
		f.Tensors[name] = Tensor{Name: name, DType: e.DType, Shape: e.Shape, Data: body[lo:hi:hi]}
		f.end = max(f.end, hi)
	}
	return nil
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close unmaps the file. Tensors must not be used afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap = nil
	return err
}

var errEmptyFile = errors.New("file is empty")

func mapFile(path string) ([]byte, func() error, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.IsDir() {
		return nil, nil, fmt.Errorf("is a directory")
	}
	if st.Size() == 0 {
		return nil, nil, errEmptyFile
	}
	return mmap(fd, st.Size())
}
