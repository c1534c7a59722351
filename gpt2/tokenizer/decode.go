package tokenizer

import (
	"unicode/utf8"

	sugarme "github.com/sugarme/tokenizer"
)

// Tokens are byte strings and a token boundary may fall inside a UTF-8
// character, so decoded text has to be repaired where the bytes are not
// valid UTF-8. The repair is the one Python's bytes.decode('utf-8',
// errors='replace') (and Rust's String::from_utf8_lossy) makes: one U+FFFD
// for each maximal subpart of an ill-formed sequence, the Unicode
// Standard's recommended practice (chapter 3, "U+FFFD Substitution of
// Maximal Subparts"). A maximal subpart is the longest prefix of a valid
// encoding that the bytes start with, or a single byte if none: so
// "\xe2\x82A" is "\uFFFDA" (Go's range loop would give two U+FFFD), and
// "\xed\xa0\x80" (a surrogate) is three.

const replacement = "\uFFFD"

// sequenceLen reports how src (non-empty) starts: n > 0 is the length of a
// valid character at the start, n < 0 means the first -n bytes are a
// maximal subpart to replace. incomplete is true when src ends inside a
// valid prefix, so more bytes could still complete (or extend) it.
func sequenceLen(src []byte) (n int, incomplete bool) {
	b := src[0]
	if b < utf8.RuneSelf {
		return 1, false
	}
	var need int
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	switch {
	case b >= 0xC2 && b <= 0xDF:
		need = 1
	case b == 0xE0:
		need, lo = 2, 0xA0 // no overlong forms
	case b == 0xED:
		need, hi = 2, 0x9F // no surrogates
	case b >= 0xE1 && b <= 0xEF:
		need = 2
	case b == 0xF0:
		need, lo = 3, 0x90 // no overlong forms
	case b == 0xF4:
		need, hi = 3, 0x8F // nothing above U+10FFFF
	case b >= 0xF1 && b <= 0xF3:
		need = 3
	default: // 0x80..0xC1, 0xF5..0xFF never start a character
		return -1, false
	}
	for k := 1; k <= need; k++ {
		if k >= len(src) {
			return -k, true
		}
		if c := src[k]; c < lo || c > hi {
			return -k, false
		}
		lo, hi = 0x80, 0xBF
	}
	return need + 1, false
}

// appendLossy appends src decoded with replacement to dst. If final is
// false and src ends in the middle of a character that later bytes could
// complete, those bytes are left unconsumed; rest is the number of bytes of
// src consumed.
func appendLossy(dst, src []byte, final bool) (out []byte, consumed int) {
	i := 0
	for i < len(src) {
		// Copy the valid run in one go.
		j := i
		for j < len(src) {
			if src[j] < utf8.RuneSelf {
				j++
				continue
			}
			n, _ := sequenceLen(src[j:])
			if n < 0 {
				break
			}
			j += n
		}
		dst = append(dst, src[i:j]...)
		i = j
		if i == len(src) {
			break
		}
		n, incomplete := sequenceLen(src[i:])
		if incomplete && !final {
			return dst, i
		}
		dst = append(dst, replacement...)
		i += -n
	}
	return dst, i
}

// byteLevelDecoder is the GPT-2 decoder in sugarme's Decoder form: tokens
// are byte-level spellings (or raw text for tokens that are not), turned
// back into bytes and then into text with replacement. It is stateless and
// safe for concurrent use.
type byteLevelDecoder struct{}

var _ sugarme.Decoder = byteLevelDecoder{}

// Decode implements sugarme.Decoder.
func (d byteLevelDecoder) Decode(tokens []string) string {
	return d.DecodeChain(tokens)[0]
}

// DecodeChain implements sugarme.Decoder. Like Hugging Face's ByteLevel
// decoder it returns the whole text as a single element, since a character
// may span tokens.
func (byteLevelDecoder) DecodeChain(tokens []string) []string {
	var raw []byte
	for _, tok := range tokens {
		if b, ok := rawBytes(tok); ok {
			raw = append(raw, b...)
		} else {
			raw = append(raw, tok...)
		}
	}
	text, _ := appendLossy(nil, raw, true)
	return []string{string(text)}
}

// Stream decodes a sequence of token ids one at a time, for streaming
// generated text. Bytes of a character split across tokens are held back
// until the character is complete, so every string Add returns is valid
// UTF-8 with whole characters, and the concatenation of everything Add and
// Flush return equals Decode of all the ids.
//
// A Stream is for one sequence and one goroutine; the Tokenizer it came
// from may be shared.
type Stream struct {
	tok     *Tokenizer
	pending []byte // an incomplete character's bytes, at most 3
	out     []byte // scratch
}

// NewStream returns a Stream decoding with t.
func (t *Tokenizer) NewStream() *Stream {
	return &Stream{tok: t}
}

// Add feeds the next token id and returns the text that is now complete,
// possibly "". Bytes that cannot begin or continue a character come out as
// U+FFFD as soon as that is certain, exactly as Decode would replace them.
// An invalid id contributes nothing.
func (s *Stream) Add(id int) string {
	s.pending = append(s.pending, s.tok.TokenBytes(id)...)
	var n int
	s.out, n = appendLossy(s.out[:0], s.pending, false)
	s.pending = s.pending[:copy(s.pending, s.pending[n:])]
	return string(s.out)
}

// Flush returns whatever is held back (an unfinished character, as one
// U+FFFD) and resets the Stream for a new sequence.
func (s *Stream) Flush() string {
	if len(s.pending) == 0 {
		return ""
	}
	s.out, _ = appendLossy(s.out[:0], s.pending, true)
	s.pending = s.pending[:0]
	return string(s.out)
}
