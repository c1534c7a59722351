package weights

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
)

// tensorSpec is one tensor to write: its header entry and a function that
// writes exactly its bytes. A nil write writes zeros (padding).
type tensorSpec struct {
	Name  string
	DType DType
	Shape []int
	write func(w io.Writer) error
}

func (s tensorSpec) size() int64 {
	n := int64(s.DType.Size())
	for _, d := range s.Shape {
		n *= int64(d)
	}
	return n
}

// placed is a tensorSpec at its byte range in the data section.
type placed struct {
	tensorSpec
	begin, end int64
}

// padPrefix starts the names of the U8 tensors that fill the gaps between
// aligned tensors: the reference safetensors reader requires the tensors
// to cover the data section without holes.
const padPrefix = "__pad__."

// layout places specs in order, each at a multiple of align within the data
// section, inserting a padding tensor "__pad__.<next name>" before any
// tensor that needs one.
func layout(specs []tensorSpec, align int64) []placed {
	var out []placed
	var off int64
	for _, s := range specs {
		if gap := (align - off%align) % align; gap > 0 {
			out = append(out, placed{tensorSpec{Name: padPrefix + s.Name, DType: "U8", Shape: []int{int(gap)}}, off, off + gap})
			off += gap
		}
		out = append(out, placed{s, off, off + s.size()})
		off += s.size()
	}
	return out
}

// encodeHeader returns the JSON header for meta and the placed tensors,
// padded with spaces so that the data section (which starts after the
// 8-byte length and the header) begins at a multiple of align. Metadata
// keys come in metaOrder, so equal inputs give equal bytes.
func encodeHeader(meta map[string]string, tensors []placed, align int64) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(meta) > 0 {
		b.WriteString(`"__metadata__":{`)
		for i, k := range metaOrder(meta) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, meta[k])
		}
		b.WriteByte('}')
	}
	for i, t := range tensors {
		if i > 0 || len(meta) > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, t.Name)
		fmt.Fprintf(&b, `:{"dtype":"%s","shape":[`, t.DType)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, t.begin, t.end)
	}
	b.WriteByte('}')
	for (8+int64(b.Len()))%align != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes()
}

// metaOrder lists meta's keys: the format marker and version first, so
// that they sit at a fixed place at the start of a gpt2d file, then the
// rest sorted.
func metaOrder(meta map[string]string) []string {
	var keys []string
	for _, k := range []string{MetaFormat, MetaFormatVersion} {
		if _, ok := meta[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range meta {
		if k != MetaFormat && k != MetaFormatVersion {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(keys, rest...)
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)           // cannot fail for a string
	b.Truncate(b.Len() - 1) // Encode's newline
}

// writeTensors writes a safetensors file to f: the header for meta and
// specs (data aligned to align), then each tensor's bytes. seal, if not
// nil, is called after the data with its SHA-256 and may change meta's
// values but not their lengths; the header is then rewritten in place.
func writeTensors(f *os.File, meta map[string]string, specs []tensorSpec, align int64, seal func(meta map[string]string, dataSHA256 string) error) error {
	tensors := layout(specs, align)
	hdr := encodeHeader(meta, tensors, align)
	var pre [8]byte
	binary.LittleEndian.PutUint64(pre[:], uint64(len(hdr)))
	if _, err := f.Write(pre[:]); err != nil {
		return err
	}
	if _, err := f.Write(hdr); err != nil {
		return err
	}
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, sum), 1<<20)
	for _, t := range tensors {
		cw := &countingWriter{w: bw}
		if t.write == nil {
			_, err := cw.Write(make([]byte, t.end-t.begin))
			if err != nil {
				return err
			}
		} else if err := t.write(cw); err != nil {
			return err
		}
		if cw.n != t.end-t.begin {
			return fmt.Errorf("tensor %s: wrote %d bytes, want %d", t.Name, cw.n, t.end-t.begin)
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if seal == nil {
		return nil
	}
	if err := seal(meta, hex.EncodeToString(sum.Sum(nil))); err != nil {
		return err
	}
	sealed := encodeHeader(meta, tensors, align)
	if len(sealed) != len(hdr) {
		return fmt.Errorf("header changed length from %d to %d when sealed", len(hdr), len(sealed))
	}
	_, err := f.WriteAt(sealed, 8)
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteSafetensors writes tensors to path as a plain safetensors file, the
// way the reference implementation does (tensors sorted by name, data
// contiguous, header padded to 8 bytes), replacing path atomically. It is
// meant for tests and tools that need Hugging Face-style checkpoints, such
// as an F16 or BF16 copy of a fixture.
func WriteSafetensors(path string, tensors []Tensor, metadata map[string]string) error {
	specs := make([]tensorSpec, 0, len(tensors))
	for _, t := range tensors {
		t := t
		if int64(len(t.Data)) != int64(t.Len())*int64(t.DType.Size()) || t.DType.Size() == 0 {
			return fmt.Errorf("write %s: tensor %s: %d bytes for shape %v of %s", path, t.Name, len(t.Data), t.Shape, t.DType)
		}
		specs = append(specs, tensorSpec{t.Name, t.DType, t.Shape, func(w io.Writer) error {
			_, err := w.Write(t.Data)
			return err
		}})
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return atomicWrite(path, func(f *os.File) error {
		return writeTensors(f, metadata, specs, 8, nil)
	})
}

// atomicWrite creates path through fill: fill writes a temporary file in
// the same directory, which is synced and renamed over path only if fill
// succeeds. An existing path is never left half-written; on failure the
// temporary file is removed.
func atomicWrite(path string, fill func(f *os.File) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, describeIOError(err, dir))
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = fill(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, describeIOError(err, dir))
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, describeIOError(err, dir))
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, describeIOError(err, dir))
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, describeIOError(err, dir))
	}
	if d, derr := os.Open(dir); derr == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return nil
}

// describeIOError adds what to do to the errors a user can fix: a full
// disk, a directory without write permission, a read-only file system.
func describeIOError(err error, dir string) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: the disk holding %s is full; free some space or write elsewhere", err, dir)
	case errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: your disk quota for %s is exhausted; free some space or write elsewhere", err, dir)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: %s is not writable by this user; fix its permissions or write elsewhere", err, dir)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %s is on a read-only file system; write elsewhere", err, dir)
	}
	return err
}
