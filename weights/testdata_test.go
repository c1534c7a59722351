package weights

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFixtureChecksums holds the fixtures in testdata/ against the
// SHA-256 table of testdata/README.md, so the provenance written there
// stays about these very bytes: a changed file, or a fixture missing from
// the table, fails.
func TestFixtureChecksums(t *testing.T) {
	root := filepath.Join("..", "testdata")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| ([0-9a-f]{64}) \| (\S+) \|$`)
	listed := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		listed[m[2]] = m[1]
	}
	if len(listed) == 0 {
		t.Fatal("README.md lists no checksums")
	}
	for name, want := range listed {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: SHA-256 %s, README.md says %s", name, got, want)
		}
	}
	// Every data fixture is listed; the OpenAI client check is code.
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, root+string(filepath.Separator)))
		switch {
		case d.IsDir() && (rel == "openai-client" || d.Name() == "node_modules"):
			return filepath.SkipDir
		case d.IsDir() || rel == "README.md":
			return nil
		}
		if _, ok := listed[rel]; !ok {
			t.Errorf("%s is not listed in testdata/README.md", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
