package weights

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"unsafe"
)

// ConvertOptions controls Convert. The zero value converts to F32.
type ConvertOptions struct {
	// DType is the element type of the weight matrices (wte and the
	// attention and MLP weights): F32 (or ""), BF16, F16 or I8. Norms,
	// biases and wpe stay F32.
	DType DType
	// Version is the gpt2d version recorded in the provenance.
	Version string
	// Context, if not nil, stops the conversion when it ends: Convert
	// then returns its error and leaves no output behind.
	Context context.Context
}

// Convert reads the Hugging Face GPT-2 directory from (config.json,
// model.safetensors in F32, F16 or BF16, tokenizer.json or vocab.json and
// merges.txt, optionally generation_config.json and SourceInfoFile) and
// writes the gpt2d weights file out, described in FORMAT.md.
//
// Matrices are narrowed to opts.DType rounding to nearest even (BF16,
// F16), or quantized per output row (I8, see QuantizeRowI8). Conversion
// streams: the source is memory-mapped and read tensor by tensor, its pages
// released once written, so memory stays near one transposed matrix rather
// than the model. The output depends only on the input and opts (names are
// sorted, nothing records time or paths), and replaces out atomically.
func Convert(from, out string, opts ConvertOptions) error {
	dt := opts.DType
	if dt == "" {
		dt = F32
	}
	if !isMatrixDType(dt) {
		return fmt.Errorf("convert %s: dtype %q: want F32, BF16, F16 or I8", from, dt)
	}
	src, err := openHFDir(from)
	if err != nil {
		return fmt.Errorf("convert %s: %w", from, err)
	}
	defer src.st.Close()

	// Hash the source on the side while converting; the hash goes into the
	// header, which writeTensors seals once the data is written.
	type hashResult struct {
		sum string
		err error
	}
	sums := make(chan hashResult, 1)
	go func() {
		sum, err := fileSHA256(src.st.Path)
		sums <- hashResult{sum, err}
	}()
	seal := func(meta map[string]string, dataSHA256 string) error {
		r := <-sums
		if r.err != nil {
			return r.err
		}
		if want := src.info.SHA256["model.safetensors"]; want != "" && want != r.sum {
			return fmt.Errorf("%s has SHA-256 %s but was fetched from %s with %s: it changed since; fetch it again, or delete %s if you replaced it on purpose",
				src.st.Path, r.sum, src.info.Repo, want, filepath.Join(from, SourceInfoFile))
		}
		meta[MetaSourceSHA256] = r.sum
		meta[MetaDataSHA256] = dataSHA256
		return nil
	}
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	c := &converter{ctx: ctx, dt: dt, scales: map[string][]float32{}}
	meta := src.metadata(dt, opts.Version)
	specs := c.specs(src)
	err = atomicWrite(out, func(f *os.File) error {
		return writeTensors(f, meta, specs, Alignment, seal)
	})
	if err != nil {
		return fmt.Errorf("convert %s: %w", from, err)
	}
	return nil
}

// hfDir is an open Hugging Face GPT-2 directory being converted.
type hfDir struct {
	dir       string
	cfg       Config
	tok       *Checkpoint // holds only the tokenizer files
	genConfig []byte
	info      SourceInfo
	st        *File
	tensors   map[string]Tensor // canonical name → tensor in HF layout
}

func openHFDir(dir string) (*hfDir, error) {
	cfgData, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(cfgData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	d := &hfDir{dir: dir, cfg: cfg, tok: &Checkpoint{Source: dir}}
	if err := readTokenizerFiles(dir, d.tok); err != nil {
		return nil, err
	}
	d.genConfig, err = os.ReadFile(filepath.Join(dir, "generation_config.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if d.info, err = ReadSourceInfo(dir); err != nil {
		return nil, err
	}
	if d.st, err = OpenSafetensors(filepath.Join(dir, "model.safetensors")); err != nil {
		return nil, err
	}
	if d.tensors, err = hfTensors(d.st, cfg); err != nil {
		d.st.Close()
		return nil, err
	}
	return d, nil
}

// zeroSHA256 stands in for hashes until the header is sealed.
const zeroSHA256 = "0000000000000000000000000000000000000000000000000000000000000000"

// metadata returns the header metadata of the converted file, with the
// hashes still zero.
func (d *hfDir) metadata(dt DType, version string) map[string]string {
	cfgJSON, _ := json.Marshal(d.cfg) // a struct of numbers and strings
	name := filepath.Base(filepath.Clean(d.dir))
	if d.info.Repo != "" {
		name = path.Base(d.info.Repo)
	}
	if version == "" {
		version = "unknown"
	}
	m := map[string]string{
		MetaFormat:        FormatName,
		MetaFormatVersion: strconv.Itoa(FormatVersion),
		MetaName:          name,
		MetaDType:         string(dt),
		MetaConfig:        string(cfgJSON),
		MetaSourceDType:   string(d.tensors["wte"].DType),
		MetaSourceSHA256:  zeroSHA256,
		MetaDataSHA256:    zeroSHA256,
		MetaGPT2DVersion:  version,
	}
	if d.tok.TokenizerJSON != nil {
		m[MetaTokenizerJSON] = string(d.tok.TokenizerJSON)
	} else {
		m[MetaVocabJSON] = string(d.tok.VocabJSON)
		m[MetaMerges] = string(d.tok.Merges)
	}
	if d.genConfig != nil {
		m[MetaGenConfig] = string(d.genConfig)
	}
	for k, v := range map[string]string{MetaSourceRepo: d.info.Repo, MetaSourceRevision: d.info.Revision, MetaSourceCommit: d.info.Commit} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// chunkElems is how many elements the converter decodes and encodes at a
// time: 1 MiB of float32, small enough to stay in cache.
const chunkElems = 1 << 18

// converter turns Hugging Face tensors into canonical ones, reusing its
// buffers from one tensor to the next.
type converter struct {
	ctx    context.Context
	dt     DType
	scales map[string][]float32 // I8 row scales to write, by tensor name
	rows   []float32            // decoded canonical rows
	whole  []float32            // a decoded source matrix, for transposing
	enc    []byte               // encoded rows
}

// specs lists the converted file's tensors in name order, each with the
// function that writes it.
func (c *converter) specs(src *hfDir) []tensorSpec {
	var specs []tensorSpec
	for name, shape := range CanonicalShapes(src.cfg) {
		dt := F32
		if isMatrix(name) {
			dt = c.dt
		}
		t := src.tensors[name]
		specs = append(specs, tensorSpec{name, dt, shape, func(w io.Writer) error {
			return c.write(ctxWriter{c.ctx, w}, name, t, shape, dt)
		}})
		if dt == I8 {
			scale := name + ".scale"
			specs = append(specs, tensorSpec{scale, F32, shape[:1], func(w io.Writer) error {
				s, ok := c.scales[scale]
				if !ok {
					return fmt.Errorf("tensor %s: written before its matrix", scale)
				}
				delete(c.scales, scale)
				_, err := w.Write(f32Bytes(s))
				return err
			}})
		}
	}
	// "<m>.scale" sorts right after "<m>", so each matrix's scales are
	// written just after it and held only meanwhile.
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs
}

// ctxWriter fails every Write once ctx has ended, so a long conversion
// stops within one chunk of a cancellation.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// write writes canonical tensor name, of the given shape and output dtype,
// from t, its Hugging Face source.
func (c *converter) write(w io.Writer, name string, t Tensor, shape []int, dt DType) error {
	rows, cols := 1, shape[0]
	if len(shape) == 2 {
		rows, cols = shape[0], shape[1]
	}
	transposed := isConv1D(name)
	if dt == F32 && t.DType == F32 && !transposed {
		// Already canonical: copy the bytes straight from the map.
		for off := 0; off < len(t.Data); off += 4 * chunkElems {
			chunk := t.Data[off:min(off+4*chunkElems, len(t.Data))]
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			release(chunk)
		}
		return nil
	}
	var whole []float32 // the source [cols, rows] when transposing
	if transposed {
		whole = c.decodeWhole(t)
	}
	var scales []float32
	per := max(1, chunkElems/cols)
	for r0 := 0; r0 < rows; r0 += per {
		r1 := min(rows, r0+per)
		buf := grow(&c.rows, (r1-r0)*cols)
		if transposed {
			gatherColumns(buf, whole, rows, cols, r0, r1)
		} else {
			decode(buf, t, r0*cols)
			es := t.DType.Size()
			release(t.Data[r0*cols*es : r1*cols*es])
		}
		if err := c.encode(w, buf, cols, dt, &scales); err != nil {
			return fmt.Errorf("tensor %s: %w", hfName(name), err)
		}
	}
	if transposed {
		release(t.Data)
	}
	if dt == I8 {
		c.scales[name+".scale"] = scales
	}
	return nil
}

// decodeWhole returns all of t as float32: a view of the map when t is
// aligned F32, else decoded into the converter's buffer.
func (c *converter) decodeWhole(t Tensor) []float32 {
	if t.DType == F32 && uintptr(unsafe.Pointer(&t.Data[0]))%4 == 0 {
		v, _ := t.F32()
		return v
	}
	buf := grow(&c.whole, t.Len())
	decode(buf, t, 0)
	return buf
}

// gatherColumns fills dst with rows [r0, r1) of the transpose of src:
// src is [in, out] (Hugging Face Conv1D), dst is (r1-r0, in).
func gatherColumns(dst, src []float32, out, in, r0, r1 int) {
	for i := 0; i < in; i++ {
		for j, v := range src[i*out+r0 : i*out+r1] {
			dst[j*in+i] = v
		}
	}
}

// decode widens len(dst) elements of t, starting at element lo, into dst.
func decode(dst []float32, t Tensor, lo int) {
	switch t.DType {
	case F32:
		b := t.Data[4*lo:]
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case BF16:
		b := t.Data[2*lo:]
		for i := range dst {
			dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case F16:
		b := t.Data[2*lo:]
		for i := range dst {
			dst[i] = HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	default:
		panic("weights: decode " + string(t.DType)) // hfTensors admits only the above
	}
}

// encode writes rows of cols values in dtype dt, appending I8 row scales
// to scales.
func (c *converter) encode(w io.Writer, vals []float32, cols int, dt DType, scales *[]float32) error {
	var b []byte
	switch dt {
	case F32:
		b = f32Bytes(vals)
	case BF16, F16:
		narrow := Float32ToBF16
		if dt == F16 {
			narrow = Float32ToHalf
		}
		b = grow(&c.enc, 2*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint16(b[2*i:], narrow(v))
		}
	case I8:
		b = grow(&c.enc, len(vals))
		q := unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
		for r := 0; r < len(vals); r += cols {
			s, err := QuantizeRowI8(q[r:r+cols], vals[r:r+cols])
			if err != nil {
				return fmt.Errorf("row %d: %w", r/cols, err)
			}
			*scales = append(*scales, s)
		}
	}
	_, err := w.Write(b)
	return err
}

// grow returns (*buf)[:n], reallocating *buf if it is too small.
func grow[T any](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	return (*buf)[:n]
}

// fileSHA256 returns the hex SHA-256 of the file at path, read through a
// buffer rather than mapped so as not to grow the resident set.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(struct{ io.Writer }{h}, struct{ io.Reader }{f}, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
