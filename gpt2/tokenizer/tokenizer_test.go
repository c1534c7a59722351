package tokenizer

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
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
