package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"gpt2d/store/pgtest"
)

// gpt2dBin is the binary built from ../cmd/gpt2d by TestMain: the manifests
// are checked against what it accepts, not against a list kept here.
var gpt2dBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gpt2d-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gpt2dBin = filepath.Join(dir, "gpt2d")
	build := exec.Command("go", "build", "-o", gpt2dBin, "../cmd/gpt2d")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gpt2d: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// help is what the binary says about one command: its flags and its text
// (which names the GPT2D_* variables the command reads).
type help struct {
	flags map[string]bool
	text  string
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]help{}
)

// flagLine matches a flag in Go's flag.PrintDefaults output.
var flagLine = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9-]*)`)

// helpOf runs `gpt2d CMD... --help` and parses its output.
func helpOf(t *testing.T, cmd ...string) help {
	t.Helper()
	key := strings.Join(cmd, " ")
	helpMu.Lock()
	defer helpMu.Unlock()
	if h, ok := helpCache[key]; ok {
		return h
	}
	var out bytes.Buffer
	c := exec.Command(gpt2dBin, append(slices.Clone(cmd), "--help")...)
	c.Stdout, c.Stderr = &out, &out
	c.Env = []string{"PATH=" + os.Getenv("PATH")} // no GPT2D_* from the caller
	err := c.Run()
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 2) {
		t.Fatalf("gpt2d %s --help: %v\n%s", key, err, out.String())
	}
	h := help{flags: map[string]bool{}, text: out.String()}
	for _, m := range flagLine.FindAllStringSubmatch(h.text, -1) {
		h.flags[m[1]] = true
	}
	helpCache[key] = h
	return h
}

// envName is a variable the binary must document: gpt2d's own and the
// Hugging Face Hub client's.
var envName = regexp.MustCompile(`^(GPT2D|HF)_[A-Z0-9_]+$`)

// checkInvocation checks that the binary accepts args (a subcommand path
// followed by flags and their values) with environment env: every --flag
// is one the subcommand lists, and every GPT2D_*/HF_* variable is named in
// the help of the subcommand or one of its parents. It returns the
// subcommand path.
func checkInvocation(t *testing.T, where string, args []string, env map[string]string) []string {
	t.Helper()
	var sub []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = append(sub, args[0]), args[1:]
	}
	if len(sub) == 0 {
		t.Errorf("%s: no gpt2d command in %q", where, args)
		return nil
	}
	h := helpOf(t, sub...)
	if strings.Contains(h.text, "unknown command") {
		t.Errorf("%s: gpt2d has no command %q:\n%s", where, strings.Join(sub, " "), h.text)
		return nil
	}
	if len(h.flags) == 0 {
		t.Errorf("%s: gpt2d %s --help lists no flags:\n%s", where, strings.Join(sub, " "), h.text)
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue // a flag's value
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !h.flags[name] {
			t.Errorf("%s: gpt2d %s has no flag %s (it has %v)", where, strings.Join(sub, " "), a, sortedKeys(h.flags))
		}
	}
	var texts []string
	for i := 1; i <= len(sub); i++ {
		texts = append(texts, helpOf(t, sub[:i]...).text)
	}
	all := strings.Join(texts, "\n")
	for name := range env {
		if envName.MatchString(name) && !regexp.MustCompile(`\b`+name+`\b`).MatchString(all) {
			t.Errorf("%s: gpt2d %s does not read %s (not in its --help)", where, strings.Join(sub, " "), name)
		}
	}
	return sub
}

// checkAddr checks a GPT2D_ADDR value: a non-loopback listener on port,
// reachable from outside the container.
func checkAddr(t *testing.T, where, addr string, port int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s: GPT2D_ADDR %q: %v", where, addr, err)
		return
	}
	if p != strconv.Itoa(port) {
		t.Errorf("%s: GPT2D_ADDR %q listens on port %s, not the container's %d", where, addr, p, port)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		t.Errorf("%s: GPT2D_ADDR %q is loopback: nothing outside the container can reach it", where, addr)
	}
}

// readYAML decodes every document of file.
func readYAML(t *testing.T, file string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, len(docs)+1, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", file)
	}
	return docs
}

// get walks v along path (map keys, or list indexes as decimal strings)
// and returns what is there, or nil.
func get(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func getMap(v any, path ...string) map[string]any {
	m, _ := get(v, path...).(map[string]any)
	return m
}

func getList(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

// getStr returns the scalar at path as a string ("" if absent).
func getStr(v any, path ...string) string {
	switch x := get(v, path...).(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

func strList(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// dockerfile is what the image runs: its ENTRYPOINT, CMD and the port it
// exposes.
type dockerfile struct {
	entrypoint, cmd []string
	expose          int
	user            string          // USER of the final stage
	owned           map[string]bool // directories the final stage gives to user (COPY --chown)
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{owned: map[string]bool{}}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		rest := strings.TrimSpace(strings.TrimPrefix(line, f[0]))
		switch f[0] {
		case "ENTRYPOINT", "CMD":
			var l []string
			if err := yaml.Unmarshal([]byte(rest), &l); err != nil {
				t.Fatalf("Dockerfile %s %s: want the exec (JSON) form: %v", f[0], rest, err)
			}
			if f[0] == "ENTRYPOINT" {
				d.entrypoint = l
			} else {
				d.cmd = l
			}
		case "FROM":
			d.user, d.owned = "", map[string]bool{} // a new stage
		case "USER":
			d.user = f[1]
		case "COPY":
			for _, a := range f[1:] {
				if owner, ok := strings.CutPrefix(a, "--chown="); ok {
					d.owned[f[len(f)-1]+"@"+owner] = true
				}
			}
		case "EXPOSE":
			d.expose, _ = strconv.Atoi(strings.TrimSuffix(f[1], "/tcp"))
		}
	}
	if len(d.entrypoint) != 1 || d.expose == 0 || d.user == "" {
		t.Fatalf("Dockerfile: want ENTRYPOINT [\"/gpt2d\"], an EXPOSE and a USER, got %q, %d, %q", d.entrypoint, d.expose, d.user)
	}
	return d
}

// writable reports whether the image's user owns dir, so that a named
// volume mounted there starts out writable by it (Docker copies the
// image directory's owner into a new volume; a directory the image lacks
// becomes a volume owned by root).
func (d dockerfile) writable(dir string) bool { return d.owned[dir+"@"+d.user] }
