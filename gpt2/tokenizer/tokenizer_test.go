package tokenizer

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

const (
	tokenizerJSONPath = "../../testdata/gpt2-tiny/tokenizer.json"
	vocabPath         = "../../testdata/gpt2-tiny/vocab.json"
	mergesPath        = "../../testdata/gpt2-tiny/merges.txt"
	casesPath         = "../../testdata/tokenizer/cases.json"
)

// readFile returns the contents of a fixture.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// loaded is one way of loading the GPT-2 fixture tokenizer.
type loaded struct {
	name string
	tok  *Tokenizer
}

// loadBoth loads the fixture through FromJSON and FromVocabMerges.
func loadBoth(t testing.TB) []loaded {
	t.Helper()
	fromJSON, err := FromJSON(readFile(t, tokenizerJSONPath))
	if err != nil {
		t.Fatalf("FromJSON: %v", err)
	}
	fromFiles, err := FromVocabMerges(readFile(t, vocabPath), readFile(t, mergesPath))
	if err != nil {
		t.Fatalf("FromVocabMerges: %v", err)
	}
	return []loaded{{"tokenizer.json", fromJSON}, {"vocab+merges", fromFiles}}
}

// referenceCase is one entry of cases.json.
type referenceCase struct {
	Name    string `json:"name"`
	Text    string `json:"text"`
	IDs     []int  `json:"ids"`
	Decoded string `json:"decoded"`
}

func readCases(t testing.TB) []referenceCase {
	t.Helper()
	var cases []referenceCase
	if err := json.Unmarshal(readFile(t, casesPath), &cases); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	if len(cases) == 0 {
		t.Fatal("cases.json has no cases")
	}
	return cases
}

func TestEncodeMatchesReferenceCases(t *testing.T) {
	cases := readCases(t)
	for _, l := range loadBoth(t) {
		matched := 0
		for _, c := range cases {
			got := l.tok.Encode(c.Text)
			if !slices.Equal(got, c.IDs) {
				t.Errorf("%s: %s: Encode(%q)\n got %v\nwant %v", l.name, c.Name, c.Text, got, c.IDs)
				continue
			}
			if dec := l.tok.Decode(got); dec != c.Decoded {
				t.Errorf("%s: %s: Decode = %q, want %q", l.name, c.Name, dec, c.Decoded)
				continue
			}
			matched++
		}
		t.Logf("%s: %d/%d reference cases match", l.name, matched, len(cases))
	}
}

func TestEncodeMatchesReferencePrompts(t *testing.T) {
	var ref struct {
		Prompts []struct {
			Name   string  `json:"name"`
			Text   *string `json:"text"`
			IDs    []int   `json:"ids"`
			Greedy struct {
				IDs          []int  `json:"ids"`
				Text         string `json:"text"`
				TextBytesHex string `json:"text_bytes_hex"`
			} `json:"greedy"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(readFile(t, "../../testdata/gpt2-tiny/reference.json"), &ref); err != nil {
		t.Fatal(err)
	}
	for _, l := range loadBoth(t) {
		for _, p := range ref.Prompts {
			if p.Text != nil {
				if got := l.tok.Encode(*p.Text); !slices.Equal(got, p.IDs) {
					t.Errorf("%s: %s: Encode = %v, want %v", l.name, p.Name, got, p.IDs)
				}
			}
			// Generated ids are arbitrary, so their text exercises
			// replacement of invalid UTF-8.
			if got := l.tok.Decode(p.Greedy.IDs); got != p.Greedy.Text {
				t.Errorf("%s: %s: Decode(greedy) = %q, want %q", l.name, p.Name, got, p.Greedy.Text)
			}
			if got := hex.EncodeToString(concatBytes(l.tok, p.Greedy.IDs)); got != p.Greedy.TextBytesHex {
				t.Errorf("%s: %s: greedy bytes = %s, want %s", l.name, p.Name, got, p.Greedy.TextBytesHex)
			}
		}
	}
}

// roundTripTexts are texts beyond cases.json whose round trip must be
// byte-exact.
var roundTripTexts = []string{
	"",
	" ",
	"\n",
	"emoji 😀😃😄 🏳️‍🌈 👩‍👩‍👧‍👦 🇬🇧",
	"CJK 漢字かなカナ한국어 中文，標點。",
	"combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0337\u0334 \u0915\u094d\u0937",
	"windows\r\nline\r\n\r\nendings\r\n",
	"\ttabs\t\tand\t \tmixed \t",
	"trailing spaces   ",
	"trailing newlines\n\n\n",
	"          many spaces before a word",
	"\u00a0\u2000\u3000\u2028\u2029 exotic spaces\u205f",
	"<|endoftext|>",
	"<|endoftext|><|endoftext|> twice",
	"'s 've 're 'll 'd 'm 't 'S 'VE",
	"\x00\x01\x1f\x7f control",
	"\U0010FFFF\U000E0001\uFFFD\uFEFF edges",
	strings.Repeat("a", 1000),
	strings.Repeat("ab ", 300),
	strings.Repeat("🍕", 100),
}

func TestDecodeEncodeRoundTripsExactly(t *testing.T) {
	texts := slices.Clone(roundTripTexts)
	for _, c := range readCases(t) {
		texts = append(texts, c.Text)
	}
	both := loadBoth(t)
	for _, text := range texts {
		want := both[0].tok.Encode(text)
		for _, l := range both {
			ids := l.tok.Encode(text)
			if !slices.Equal(ids, want) {
				t.Errorf("%q: %s ids %v, %s ids %v", text, l.name, ids, both[0].name, want)
			}
			if got := l.tok.Decode(ids); got != text {
				t.Errorf("%s: Decode(Encode(%q)) = %q", l.name, text, got)
			}
			if slices.Contains(ids, l.tok.EOS()) {
				t.Errorf("%s: Encode(%q) produced EOS", l.name, text)
			}
		}
	}
}

func TestEncodeInvalidUTF8KeepsEveryByte(t *testing.T) {
	tests := []struct{ in, decoded string }{
		{"\xff", "\uFFFD"},
		{"abc\x80def", "abc\uFFFDdef"},
		{"\xe2\x82 euro cut", "\uFFFD euro cut"},
		{"pizza \xf0\x9f\x8d", "pizza \uFFFD"},
		{"\xed\xa0\x80 surrogate", "\uFFFD\uFFFD\uFFFD surrogate"},
		{"  \xc0\xaf  \n", "  \uFFFD\uFFFD  \n"},
	}
	for _, l := range loadBoth(t) {
		for _, tt := range tests {
			ids := l.tok.Encode(tt.in)
			if got := string(concatBytes(l.tok, ids)); got != tt.in {
				t.Errorf("%s: token bytes of Encode(%q) = %q", l.name, tt.in, got)
			}
			if got := l.tok.Decode(ids); got != tt.decoded {
				t.Errorf("%s: Decode(Encode(%q)) = %q, want %q", l.name, tt.in, got, tt.decoded)
			}
		}
	}
}

func TestEndOfTextInTextIsPlainText(t *testing.T) {
	for _, l := range loadBoth(t) {
		tests := []struct {
			text string
			want []int
		}{
			{"<|endoftext|>", []int{27, 91, 437, 1659, 5239, 91, 29}},
			{"Hello<|endoftext|>World", []int{15496, 27, 91, 437, 1659, 5239, 91, 29, 10603}},
		}
		for _, tt := range tests {
			if got := l.tok.Encode(tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("%s: Encode(%q) = %v, want %v", l.name, tt.text, got, tt.want)
			}
		}
		if l.tok.EOS() != 50256 {
			t.Errorf("%s: EOS() = %d, want 50256", l.name, l.tok.EOS())
		}
		if l.tok.VocabSize() != 50257 {
			t.Errorf("%s: VocabSize() = %d, want 50257", l.name, l.tok.VocabSize())
		}
		// The engine adds EOS by id; it decodes as its text.
		if got := l.tok.TokenText(50256); got != "<|endoftext|>" {
			t.Errorf("%s: TokenText(50256) = %q", l.name, got)
		}
	}
}

func TestTokenAccessors(t *testing.T) {
	tok := loadBoth(t)[0].tok
	tests := []struct {
		id    int
		bytes []byte
		text  string
	}{
		{262, []byte(" the"), " the"},
		{220, []byte(" "), " "},
		{198, []byte("\n"), "\n"},
		{12520, []byte(" \xf0\x9f"), " \uFFFD"}, // a token that ends mid-character
		{235, []byte{0x8d}, "\uFFFD"},
		{-1, nil, ""},
		{50257, nil, ""},
	}
	for _, tt := range tests {
		if got := tok.TokenBytes(tt.id); !slices.Equal(got, tt.bytes) {
			t.Errorf("TokenBytes(%d) = %q, want %q", tt.id, got, tt.bytes)
		}
		if got := tok.TokenText(tt.id); got != tt.text {
			t.Errorf("TokenText(%d) = %q, want %q", tt.id, got, tt.text)
		}
	}
	if got := tok.Decode([]int{-5, 15496, 99999, 995}); got != "Hello world" {
		t.Errorf("Decode skips invalid ids: got %q", got)
	}
	if got := tok.Encode(""); got == nil || len(got) != 0 {
		t.Errorf("Encode(\"\") = %#v, want an empty non-nil slice", got)
	}
}

// TestPiecesMatchReferenceIDsAndOffsets holds sugarme's Encoding, as
// Pieces returns it, against independent data: the ids OpenAI's encoder
// gave for each fixture case, and the case's own text — every piece's
// character span must hold exactly its bytes (or, for a character split
// over tokens, that whole character), and the spans must tile the text.
func TestPiecesMatchReferenceIDsAndOffsets(t *testing.T) {
	for _, l := range loadBoth(t) {
		for _, c := range readCases(t) {
			if !utf8.ValidString(c.Text) {
				if _, err := l.tok.Pieces(c.Text); !errors.Is(err, ErrInvalidUTF8) {
					t.Errorf("%s: %s: Pieces of invalid UTF-8: %v", l.name, c.Name, err)
				}
				continue
			}
			pieces, err := l.tok.Pieces(c.Text)
			if err != nil {
				t.Fatalf("%s: %s: %v", l.name, c.Name, err)
			}
			ids := make([]int, len(pieces))
			for i, p := range pieces {
				ids[i] = p.ID
			}
			if !slices.Equal(ids, c.IDs) {
				t.Errorf("%s: %s: ids\n got %v\nwant %v", l.name, c.Name, ids, c.IDs)
				continue
			}
			runes := []rune(c.Text)
			var tiled strings.Builder
			end := 0
			for i, p := range pieces {
				if p.Start < 0 || p.End > len(runes) || p.Start >= p.End {
					t.Fatalf("%s: %s: piece %d has offsets %d..%d in %d characters", l.name, c.Name, i, p.Start, p.End, len(runes))
				}
				span := string(runes[p.Start:p.End])
				switch {
				case utf8.Valid(p.Bytes) && span != string(p.Bytes):
					t.Errorf("%s: %s: piece %d (%q) spans %q", l.name, c.Name, i, p.Bytes, span)
				case !utf8.Valid(p.Bytes) && (!strings.Contains(span, string(p.Bytes)) || len(span) > len(p.Bytes)+2*(utf8.UTFMax-1)):
					t.Errorf("%s: %s: piece %d (% x) of a split character spans %q", l.name, c.Name, i, p.Bytes, span)
				}
				if p.Start >= end {
					if p.Start != end {
						t.Errorf("%s: %s: piece %d starts at %d, after a gap from %d", l.name, c.Name, i, p.Start, end)
					}
					tiled.WriteString(span)
					end = p.End
				}
			}
			if tiled.String() != c.Text {
				t.Errorf("%s: %s: spans tile %q, want %q", l.name, c.Name, tiled.String(), c.Text)
			}
		}
	}
}

// TestPiecesOfLongTextsAreThoseOfEncode: Pieces hands sugarme the text
// in runs of words; the ids of a long text must still be Encode's, and
// the bytes must still add up to the text.
func TestPiecesOfLongTextsAreThoseOfEncode(t *testing.T) {
	tok := loadBoth(t)[0].tok
	var texts []string
	for _, c := range readCases(t) {
		texts = append(texts, strings.ToValidUTF8(c.Text, "\uFFFD"))
	}
	long := strings.Join(texts, "   \n\t ")
	for _, text := range []string{long, strings.Repeat(long, 5), strings.Repeat(" ", 3*piecesChunk) + "x", strings.Repeat("ab", 3*piecesChunk)} {
		pieces, err := tok.Pieces(text)
		if err != nil {
			t.Fatal(err)
		}
		want := tok.Encode(text)
		var all []byte
		for i, p := range pieces {
			if i >= len(want) || p.ID != want[i] {
				t.Fatalf("%d-byte text: piece %d is %d, Encode gives %v", len(text), i, p.ID, want[min(i, len(want)-1)])
			}
			all = append(all, p.Bytes...)
		}
		if len(pieces) != len(want) || string(all) != text {
			t.Fatalf("%d-byte text: %d pieces for %d ids", len(text), len(pieces), len(want))
		}
	}
}

func TestConcurrentUseIsSafeAndConsistent(t *testing.T) {
	tok := loadBoth(t)[0].tok
	// A tiny cache makes the goroutines fight over evictions.
	tok.model.cache = newWordCache(2 * cacheShards)
	cases := readCases(t)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				c := cases[(g*7+i)%len(cases)]
				ids := tok.Encode(c.Text)
				if !slices.Equal(ids, c.IDs) {
					errs <- fmt.Sprintf("%s: Encode = %v, want %v", c.Name, ids, c.IDs)
					return
				}
				s := tok.NewStream()
				var out strings.Builder
				for _, id := range ids {
					out.WriteString(s.Add(id))
				}
				out.WriteString(s.Flush())
				if out.String() != c.Decoded || tok.Decode(ids) != c.Decoded {
					errs <- fmt.Sprintf("%s: decoded %q", c.Name, out.String())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range roundTripTexts {
		f.Add(s)
	}
	for _, s := range []string{"Hello world", "a  \n b", "it's", "\xff 1", "\xe2\x82"} {
		f.Add(s)
	}
	both := loadBoth(f)
	f.Fuzz(func(t *testing.T, text string) {
		ids := both[0].tok.Encode(text)
		if other := both[1].tok.Encode(text); !slices.Equal(ids, other) {
			t.Fatalf("loaders disagree on %q: %v vs %v", text, ids, other)
		}
		if got := string(concatBytes(both[0].tok, ids)); got != text {
			t.Fatalf("token bytes of Encode(%q) = %q", text, got)
		}
		if !utf8.ValidString(text) {
			return
		}
		if got := both[0].tok.Decode(ids); got != text {
			t.Fatalf("Decode(Encode(%q)) = %q", text, got)
		}
	})
}

// benchText is varied English, code, numbers and some non-ASCII.
func benchText(tb testing.TB) string {
	var b strings.Builder
	for _, c := range readCases(tb) {
		b.WriteString(c.Text)
		b.WriteString("\n")
	}
	return strings.Repeat(b.String(), 8)
}

func BenchmarkEncode(b *testing.B) {
	tok := loadBoth(b)[0].tok
	text := benchText(b)
	tok.Encode(text) // warm the cache, as a running server's is
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		tok.Encode(text)
	}
}

func BenchmarkEncodeUncached(b *testing.B) {
	tok := loadBoth(b)[0].tok
	tok.model.cache = nil
	text := benchText(b)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		tok.Encode(text)
	}
}

func BenchmarkEncodeParallel(b *testing.B) {
	tok := loadBoth(b)[0].tok
	text := benchText(b)
	tok.Encode(text)
	b.SetBytes(int64(len(text)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tok.Encode(text)
		}
	})
}

// BenchmarkSugarmePipeline is the same text through sugarme's
// Tokenizer.EncodeSingle with the same pieces, for comparison.
func BenchmarkSugarmePipeline(b *testing.B) {
	tok := loadBoth(b)[0].tok
	text := benchText(b)[:4096]
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := tok.Pieces(text); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	tok := loadBoth(b)[0].tok
	text := benchText(b)
	ids := tok.Encode(text)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		tok.Decode(ids)
	}
}

func BenchmarkStream(b *testing.B) {
	tok := loadBoth(b)[0].tok
	text := benchText(b)
	ids := tok.Encode(text)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		s := tok.NewStream()
		for _, id := range ids {
			s.Add(id)
		}
		s.Flush()
	}
}
