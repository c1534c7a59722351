package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The expectations below were produced by CPython 3.11:
// bytes.decode('utf-8', 'replace') and
// codecs.getincrementaldecoder('utf-8')('replace').

func TestDecodeReplacesMaximalSubpartsLikePython(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"\x61\x62\x63", "\x61\x62\x63"},
		{"\xe2\x82\x41", "\xef\xbf\xbd\x41"},
		{"\xf0\x9f\x98", "\xef\xbf\xbd"},
		{"\xf0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xf0\x9f\x98\x80\x80", "\xf0\x9f\x98\x80\xef\xbf\xbd"},
		{"\x61\x80\x62", "\x61\xef\xbf\xbd\x62"},
		{"\xc2", "\xef\xbf\xbd"},
		{"\xe1\x80", "\xef\xbf\xbd"},
		{"\xf1\x80\x80", "\xef\xbf\xbd"},
		{"\xf5\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"},
		{"\xef\xbf\xbd", "\xef\xbf\xbd"},
		{"\xe0\xa0\x80", "\xe0\xa0\x80"},
		{"\xe0\x9f\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xed\x9f\xbf", "\xed\x9f\xbf"},
		{"\xc2\xc2\xa9", "\xef\xbf\xbd\xc2\xa9"},
		{"\xf0\x9f\x8d\x95\xf0\x9f", "\xf0\x9f\x8d\x95\xef\xbf\xbd"},
		{"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa", "\xe6\x97\xa5\xe6\x9c\xac\xef\xbf\xbd"},
		{"\x80\x80\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xf8\x88\x80\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xc1\xbf", "\xef\xbf\xbd\xef\xbf\xbd"},
		{"\xe2\x82\xac\xe2\x82", "\xe2\x82\xac\xef\xbf\xbd"},
		{"\x78\xf3\xa0\x80\x79", "\x78\xef\xbf\xbd\x79"},
		{"\x00\x7f\xc2\x80\xdf\xbf", "\x00\x7f\xc2\x80\xdf\xbf"},
	}
	tok := loadBoth(t)[1].tok
	for _, tt := range tests {
		got, n := appendLossy(nil, []byte(tt.in), true)
		if string(got) != tt.want || n != len(tt.in) {
			t.Errorf("appendLossy(%q) = %q, %d; want %q, %d", tt.in, got, n, tt.want, len(tt.in))
		}
		// Through the tokenizer: encoding is byte-exact, decoding repairs.
		ids := tok.Encode(tt.in)
		if got := tok.Decode(ids); got != tt.want {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", tt.in, got, tt.want)
		}
		if got := string(concatBytes(tok, ids)); got != tt.in {
			t.Errorf("TokenBytes of Encode(%q) concatenate to %q", tt.in, got)
		}
	}
}

// concatBytes joins the raw bytes of ids.
func concatBytes(tok *Tokenizer, ids []int) []byte {
	var raw []byte
	for _, id := range ids {
		raw = append(raw, tok.TokenBytes(id)...)
	}
	return raw
}

// TestDecodeMatchesMaximalSubpartOracle checks appendLossy
// against an independent oracle on random bytes: the maximal subpart at i
// is the longest prefix of src[i:] that is a prefix of some valid
// encoding, found by trying every rune.
func TestDecodeMatchesMaximalSubpartOracle(t *testing.T) {
	prefixes := map[string]bool{}
	for r := rune(0x80); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		enc := string(utf8.AppendRune(nil, r))
		for k := 1; k < len(enc); k++ {
			prefixes[enc[:k]] = true
		}
	}
	oracle := func(src string) string {
		var b strings.Builder
		for i := 0; i < len(src); {
			if r, w := utf8.DecodeRuneInString(src[i:]); r != utf8.RuneError || w > 1 {
				b.WriteString(src[i : i+w])
				i += w
				continue
			}
			k := 1
			for k < 3 && i+k < len(src) && prefixes[src[i:i+k+1]] {
				k++
			}
			b.WriteString(replacement)
			i += k
		}
		return b.String()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	interesting := []byte{0x00, 'a', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff}
	for range 20000 {
		src := make([]byte, rng.IntN(12))
		for i := range src {
			src[i] = interesting[rng.IntN(len(interesting))]
		}
		got, _ := appendLossy(nil, src, true)
		if want := oracle(string(src)); string(got) != want {
			t.Fatalf("appendLossy(%q) = %q, oracle %q", src, got, want)
		}
	}
}

func TestStreamHoldsBackIncompleteCharactersLikePython(t *testing.T) {
	tests := []struct {
		in    string
		adds  []string // output after each byte
		flush string
	}{
		{"\x61\xf0\x9f\x98\x80\x62", []string{"\x61", "", "", "", "\xf0\x9f\x98\x80", "\x62"}, ""},
		{"\xf0\x9f\x98\x41", []string{"", "", "", "\xef\xbf\xbd\x41"}, ""},
		{"\xe2\x82\xac", []string{"", "", "\xe2\x82\xac"}, ""},
		// CPython holds "\xed\xa0" back (a truncated surrogate, for the
		// surrogatepass handler) though no byte can complete it; this
		// Stream replaces ED as soon as A0 shows it can never complete.
		// The text in total is the same.
		{"\xed\xa0\x80", []string{"", "\xef\xbf\xbd\xef\xbf\xbd", "\xef\xbf\xbd"}, ""},
		{"\xf0\x80", []string{"", "\xef\xbf\xbd\xef\xbf\xbd"}, ""},
		{"\xc2", []string{""}, "\xef\xbf\xbd"},
		{"\xe6\x97\xa5\xe6", []string{"", "", "\xe6\x97\xa5", ""}, "\xef\xbf\xbd"},
		{"\x80\xc2\xa9\xff", []string{"\xef\xbf\xbd", "", "\xc2\xa9", "\xef\xbf\xbd"}, ""},
	}
	tok := loadBoth(t)[1].tok
	for _, tt := range tests {
		s := tok.NewStream()
		for i := range len(tt.in) {
			if got := s.Add(int(tok.model.byteID[tt.in[i]])); got != tt.adds[i] {
				t.Errorf("%q: Add(byte %d) = %q, want %q", tt.in, i, got, tt.adds[i])
			}
		}
		if got := s.Flush(); got != tt.flush {
			t.Errorf("%q: Flush() = %q, want %q", tt.in, got, tt.flush)
		}
		if got := s.Flush(); got != "" {
			t.Errorf("%q: second Flush() = %q, want \"\"", tt.in, got)
		}
	}
}

func TestStreamNeverEmitsPartialCharacters(t *testing.T) {
	texts := []string{
		"I love pizza 🍕🍕!",
		"family 👨\u200d👩\u200d👧\u200d👦 and technologist 👩🏽\u200d💻",
		"🇺🇸🇯🇵 👍🏻👍🏿",
		"我爱自然语言处理。日本語のテキスト",
		"안녕하세요 세계",
		"Café, naïve, é vs e\u0301",
		"∀x ∈ ℝ: x² ≥ 0 → √(x²)",
		"𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 \U0010FFFD",
	}
	for _, l := range loadBoth(t) {
		for _, text := range texts {
			ids := l.tok.Encode(text)
			split := false
			for _, id := range ids {
				if !utf8.Valid(l.tok.TokenBytes(id)) {
					split = true
				}
			}
			if !split {
				t.Errorf("%s: %q: no token splits a character; the test needs one", l.name, text)
			}
			s := l.tok.NewStream()
			var out strings.Builder
			fed := 0
			for _, id := range ids {
				chunk := s.Add(id)
				fed += len(l.tok.TokenBytes(id))
				if !utf8.ValidString(chunk) || strings.Contains(chunk, replacement) {
					t.Errorf("%s: %q: Add(%d) = %q, a partial character", l.name, text, id, chunk)
				}
				out.WriteString(chunk)
				// Held back: at most the 3 leading bytes of one character.
				if held := fed - out.Len(); held < 0 || held > 3 {
					t.Errorf("%s: %q: %d bytes held back after %d fed", l.name, text, held, fed)
				}
			}
			out.WriteString(s.Flush())
			if got, want := out.String(), l.tok.Decode(ids); got != want || got != text {
				t.Errorf("%s: streamed %q, Decode %q, text %q", l.name, got, want, text)
			}
		}
	}
}

func TestStreamConcatenationEqualsDecodeForRandomIDs(t *testing.T) {
	tok := loadBoth(t)[0].tok
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		ids := make([]int, rng.IntN(16))
		for i := range ids {
			switch rng.IntN(3) {
			case 0: // a single byte, often a stray UTF-8 piece
				ids[i] = int(tok.model.byteID[128+rng.IntN(128)])
			case 1:
				ids[i] = rng.IntN(tok.VocabSize())
			default:
				ids[i] = rng.IntN(tok.VocabSize()+4) - 2 // some invalid ids
			}
		}
		s := tok.NewStream()
		var out strings.Builder
		for _, id := range ids {
			chunk := s.Add(id)
			if !utf8.ValidString(chunk) {
				t.Fatalf("Add(%d) = %q is not valid UTF-8", id, chunk)
			}
			out.WriteString(chunk)
		}
		out.WriteString(s.Flush())
		if got, want := out.String(), tok.Decode(ids); got != want {
			t.Fatalf("ids %v: streamed %q, Decode %q", ids, got, want)
		}
	}
}

func TestByteLevelDecoderForSugarme(t *testing.T) {
	tests := []struct {
		tokens []string
		want   string
	}{
		{nil, ""},
		{[]string{"Hello", "Ġworld"}, "Hello world"},
		{[]string{"ĠðŁ", "į", "ķ"}, " 🍕"}, // a character across three tokens
		{[]string{"ĠðŁ"}, " \uFFFD"},      // cut off
		{[]string{"<|endoftext|>"}, "<|endoftext|>"},
		{[]string{"ĊĉĠ", "âĤ¬"}, "\n\t €"},
	}
	for _, tt := range tests {
		if got := (byteLevelDecoder{}).Decode(tt.tokens); got != tt.want {
			t.Errorf("Decode(%q) = %q, want %q", tt.tokens, got, tt.want)
		}
		if got := (byteLevelDecoder{}).DecodeChain(tt.tokens); !slices.Equal(got, []string{tt.want}) {
			t.Errorf("DecodeChain(%q) = %q, want [%q]", tt.tokens, got, tt.want)
		}
	}
}
