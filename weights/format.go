package weights

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"
)

// The gpt2d weights file is a safetensors file whose __metadata__ marks it
// as gpt2d's and whose tensors are in the canonical layout, each 64-byte
// aligned in the file. FORMAT.md describes it in full.
const (
	// FormatName is the value of the "format" metadata key.
	FormatName = "gpt2d"
	// FormatVersion is the format version this package writes and reads.
	FormatVersion = 1
	// Alignment is the byte alignment of every tensor in the file (and so
	// in memory, the file being mapped at a page boundary): a cache line,
	// and enough for any vector load.
	Alignment = 64
)

// Metadata keys of a gpt2d weights file. All values are strings, as
// safetensors requires.
const (
	MetaFormat         = "format"         // FormatName
	MetaFormatVersion  = "format_version" // decimal FormatVersion
	MetaName           = "name"           // model name, e.g. "gpt2"
	MetaDType          = "dtype"          // element type of the matrices
	MetaConfig         = "config"         // the Config as JSON
	MetaTokenizerJSON  = "tokenizer.json" // tokenizer.json content, or:
	MetaVocabJSON      = "vocab.json"     // vocab.json content, with
	MetaMerges         = "merges.txt"     // merges.txt content
	MetaGenConfig      = "generation_config.json"
	MetaSourceRepo     = "source_repo"     // Hub repository, if known
	MetaSourceRevision = "source_revision" // revision asked for, if known
	MetaSourceCommit   = "source_commit"   // commit it resolved to, if known
	MetaSourceSHA256   = "source_sha256"   // SHA-256 of model.safetensors
	MetaSourceDType    = "source_dtype"    // dtype of the source matrices
	MetaDataSHA256     = "data_sha256"     // SHA-256 of the data section
	MetaGPT2DVersion   = "gpt2d_version"   // version of the converter
)

// Errors a converted file can be refused with, wrapped with the file name
// and the details; test for them with errors.Is.
var (
	// ErrNotConverted means the file is not a gpt2d weights file at all.
	ErrNotConverted = errors.New("not a gpt2d weights file")
	// ErrFormatVersion means the file is a gpt2d weights file of a format
	// version this build does not read.
	ErrFormatVersion = errors.New("unsupported gpt2d weights format version")
	// ErrCorrupt means the file claims to be a gpt2d weights file but is
	// truncated, inconsistent or fails its checksum.
	ErrCorrupt = errors.New("corrupt gpt2d weights file")
)

// formatPrefix is how every gpt2d file's header begins: it serves as the
// magic number.
var formatPrefix = []byte(`{"__metadata__":{"format":"gpt2d"`)

// isMatrix reports whether a canonical tensor is a weight matrix, stored in
// the checkpoint's DType.
func isMatrix(name string) bool { return name == "wte" || isConv1D(name) }

// openConverted maps a gpt2d weights file and checks it fully before
// handing out views: marker, version, config, and every canonical tensor's
// presence, dtype, shape and alignment. It does not read the tensor data.
func openConverted(path string) (*Checkpoint, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	ck, err := parseConverted(path, data)
	if err != nil {
		unmap()
		if errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w; convert the checkpoint again", err)
		}
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	ck.closer = unmap
	return ck, nil
}

// parseConverted checks a mapped gpt2d weights file, in order: the
// header, gpt2d's format marker and version, the data section's extent and
// alignment, the config, the matrix dtype, the tokenizer, and every
// canonical tensor; it returns the checkpoint over the mapped data. Errors
// wrap ErrNotConverted, ErrFormatVersion or ErrCorrupt.
func parseConverted(path string, data []byte) (*Checkpoint, error) {
	if len(data) < 8 || !bytes.HasPrefix(data[8:], formatPrefix[:1]) {
		return nil, fmt.Errorf("%w: it does not begin with a safetensors header; make one with `gpt2d weights convert`", ErrNotConverted)
	}
	f, raw, err := parseHeader(data)
	if err != nil {
		if n := min(len(data)-8, len(formatPrefix)); bytes.Equal(data[8:8+n], formatPrefix[:n]) {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotConverted, err)
	}
	meta := f.Metadata
	if meta[MetaFormat] != FormatName {
		return nil, fmt.Errorf("%w: it is a safetensors file without gpt2d's format marker (a Hugging Face checkpoint?); convert its directory with `gpt2d weights convert --from DIR --out FILE`, or pass the directory", ErrNotConverted)
	}
	if v, err := strconv.Atoi(meta[MetaFormatVersion]); err != nil || v != FormatVersion {
		return nil, fmt.Errorf("%w: the file is format version %q, this gpt2d reads version %d; convert the checkpoint again with this gpt2d", ErrFormatVersion, meta[MetaFormatVersion], FormatVersion)
	}
	if err := f.addTensors(raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if end := int64(len(data)) - f.DataStart; f.end != end {
		return nil, fmt.Errorf("%w: the header describes %d data bytes but the file holds %d (truncated or appended to?)", ErrCorrupt, f.end, end)
	}
	if f.DataStart%Alignment != 0 {
		return nil, fmt.Errorf("%w: data section starts at %d, not %d-byte aligned", ErrCorrupt, f.DataStart, Alignment)
	}
	cfg, err := ParseConfig([]byte(meta[MetaConfig]))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	dt := DType(meta[MetaDType])
	if !isMatrixDType(dt) {
		return nil, fmt.Errorf("%w: matrix dtype %q is not one of F32, BF16, F16, I8", ErrCorrupt, dt)
	}
	ck := &Checkpoint{Config: cfg, Name: meta[MetaName], DType: dt, Source: path}
	if ck.Name == "" {
		ck.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if err := ck.takeMetadata(meta); err != nil {
		return nil, err
	}
	if ck.Tensors, err = canonicalTensors(f, cfg, dt); err != nil {
		return nil, err
	}
	return ck, nil
}

// takeMetadata sets the checkpoint's tokenizer from a converted file's
// metadata (tokenizer.json, else vocab.json and merges.txt) and keeps the
// rest of it as Metadata.
func (ck *Checkpoint) takeMetadata(meta map[string]string) error {
	if s, ok := meta[MetaTokenizerJSON]; ok {
		ck.TokenizerJSON = []byte(s)
	} else {
		v, okv := meta[MetaVocabJSON]
		m, okm := meta[MetaMerges]
		if !okv || !okm {
			return fmt.Errorf("%w: no tokenizer in the metadata", ErrCorrupt)
		}
		ck.VocabJSON, ck.Merges = []byte(v), []byte(m)
	}
	ck.Metadata = map[string]string{}
	for k, v := range meta {
		switch k {
		case MetaTokenizerJSON, MetaVocabJSON, MetaMerges:
		default:
			ck.Metadata[k] = v
		}
	}
	return nil
}

// canonicalTensors returns every canonical tensor of cfg from f, each
// checked for its dtype (dt for the matrices, with their F32 scales for
// I8; F32 for the rest), shape and alignment.
func canonicalTensors(f *File, cfg Config, dt DType) (map[string]Tensor, error) {
	tensors := map[string]Tensor{}
	for name, shape := range CanonicalShapes(cfg) {
		want := F32
		if isMatrix(name) {
			want = dt
		}
		t, err := checkTensor(f, name, want, shape)
		if err != nil {
			return nil, err
		}
		tensors[name] = t
		if want == I8 {
			s, err := checkTensor(f, name+".scale", F32, shape[:1])
			if err != nil {
				return nil, err
			}
			tensors[s.Name] = s
		}
	}
	return tensors, nil
}

// checkTensor returns f's tensor name if it has the dtype and shape wanted
// and is aligned as the format promises.
func checkTensor(f *File, name string, dt DType, shape []int) (Tensor, error) {
	t, ok := f.Tensors[name]
	switch {
	case !ok:
		return Tensor{}, fmt.Errorf("%w: missing tensor %s", ErrCorrupt, name)
	case t.DType != dt || !equalShape(t.Shape, shape):
		return Tensor{}, fmt.Errorf("%w: tensor %s is %s %v, want %s %v", ErrCorrupt, name, t.DType, t.Shape, dt, shape)
	case len(t.Data) > 0 && uintptr(unsafe.Pointer(&t.Data[0]))%Alignment != 0:
		return Tensor{}, fmt.Errorf("%w: tensor %s is not %d-byte aligned", ErrCorrupt, name, Alignment)
	}
	return t, nil
}

// Verify opens the gpt2d weights file at path as Load does and also checks
// the SHA-256 of its data section against the one recorded at conversion,
// which Load skips to keep start-up free of reading the weights.
func Verify(path string) error {
	data, unmap, err := mapFile(path)
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	defer unmap()
	ck, err := parseConverted(path, data)
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	hdr := binary.LittleEndian.Uint64(data)
	sum := sha256.Sum256(data[8+hdr:])
	if got, want := hex.EncodeToString(sum[:]), ck.Metadata[MetaDataSHA256]; got != want {
		return fmt.Errorf("verify %s: %w: data SHA-256 is %s, the header records %s; convert the checkpoint again", path, ErrCorrupt, got, want)
	}
	return nil
}

// isMatrixDType reports whether dt is a supported element type for the
// weight matrices.
func isMatrixDType(dt DType) bool {
	switch dt {
	case F32, BF16, F16, I8:
		return true
	}
	return false
}

// ParseDType parses a matrix element type as given on a command line:
// f32, bf16, f16 or int8 (case-insensitive; float32, bfloat16, float16,
// fp16, half and i8 are accepted too).
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "f32", "float32", "fp32":
		return F32, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "f16", "fp16", "float16", "half":
		return F16, nil
	case "int8", "i8":
		return I8, nil
	}
	return "", fmt.Errorf("unknown dtype %q: want f32, bf16, f16 or int8", s)
}
