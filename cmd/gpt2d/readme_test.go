package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The README is a walk-through a new user pastes block by block; this
// test pastes it too. Every ```sh block runs, in order, in one bash
// process against the built binary serving the tiny model on a loopback
// port (standing in for `make run`), from a directory laid out like a
// checkout after `make run`: bin/gpt2d, models/gpt2.gpt2d, data/.
//
// Conventions the README follows so that it can be checked:
//   - A block preceded by the line <!-- readme-test: skip (REASON) --> is
//     shown, not run (make run itself, make test, docker).
//   - Each command must exit 0, unless a comment on it says "# exit N".
//   - Each HTTP answer curl gets must be 2xx, unless a comment on its
//     command starts with the expected status ("# 201 {...}", "# 401 ...").
//   - http://127.0.0.1:8000 is the server: the test substitutes its own
//     address.
//   - Unset variables are errors (bash -u): a block may only use what an
//     earlier block set.

// readmeBlock is one runnable fenced block of the README.
type readmeBlock struct {
	line     int // 1-based line of the opening fence
	commands []readmeCommand
}

// readmeCommand is one command of a block (continuation lines joined).
type readmeCommand struct {
	line       int    // 1-based line in the README
	text       string // as written, with its continuation lines
	wantStatus int    // HTTP status its comment announces; 0: any 2xx
	wantExit   int    // exit status its comment announces
}

var (
	fenceRe  = regexp.MustCompile("^```\\s*(\\S*)")
	skipRe   = regexp.MustCompile(`^<!--\s*readme-test:\s*skip\b`)
	statusRe = regexp.MustCompile(`(?:^|\s)#\s*(?:→\s*)?([1-5]\d\d)\b`)
	exitRe   = regexp.MustCompile(`(?:^|\s)#\s*exit\s+(\d+)\b`)
)

// readmeBlocks returns the README's runnable shell blocks.
func readmeBlocks(readme string) ([]readmeBlock, error) {
	var blocks []readmeBlock
	lines := strings.Split(readme, "\n")
	prev := "" // the last non-empty line outside a block
	for i := 0; i < len(lines); i++ {
		m := fenceRe.FindStringSubmatch(lines[i])
		if m == nil {
			if strings.TrimSpace(lines[i]) != "" {
				prev = lines[i]
			}
			continue
		}
		start := i
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			return nil, fmt.Errorf("README.md:%d: unterminated code block", start+1)
		}
		if m[1] != "sh" || skipRe.MatchString(strings.TrimSpace(prev)) {
			prev = ""
			continue
		}
		prev = ""
		b := readmeBlock{line: start + 1}
		for k := 0; k < len(body); k++ {
			if t := strings.TrimSpace(body[k]); t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			c := readmeCommand{line: start + 2 + k, text: body[k]}
			for strings.HasSuffix(strings.TrimRight(body[k], " "), "\\") && k+1 < len(body) {
				k++
				c.text += "\n" + body[k]
			}
			if m := statusRe.FindStringSubmatch(c.text); m != nil {
				c.wantStatus, _ = strconv.Atoi(m[1])
			}
			if m := exitRe.FindStringSubmatch(c.text); m != nil {
				c.wantExit, _ = strconv.Atoi(m[1])
			}
			b.commands = append(b.commands, c)
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// readmeScript is the bash script running blocks: each command is
// announced on stdout, run, and its exit status and the HTTP statuses its
// curl calls got are appended to the file $README_STATUS.
func readmeScript(blocks []readmeBlock, addr string) string {
	var s strings.Builder
	s.WriteString(`set -uo pipefail
curl() {
	local hdr rc
	hdr=$(mktemp)
	command curl -sS --max-time 120 -D "$hdr" "$@"
	rc=$?
	awk '/^HTTP\//{c=$2} END{if (c != "") print "status " c}' "$hdr" >>"$README_STATUS"
	rm -f "$hdr"
	return $rc
}
`)
	n := 0
	for _, b := range blocks {
		for _, c := range b.commands {
			text := strings.ReplaceAll(c.text, "127.0.0.1:8000", addr)
			fmt.Fprintf(&s, "echo %q >>\"$README_STATUS\"\n", fmt.Sprintf("command %d", n))
			fmt.Fprintf(&s, "printf '\\n%s%d\\n$ %%s\\n' %s\n", outputMark, n, shellQuote(strings.SplitN(c.text, "\n", 2)[0]))
			fmt.Fprintf(&s, "%s\n", text)
			fmt.Fprintf(&s, "echo \"exit $?\" >>\"$README_STATUS\"\n")
			n++
		}
	}
	return s.String()
}

// outputMark begins the output of command N in a run's output.
const outputMark = "### README COMMAND "

// commandOutput returns command n's part of a run's output.
func commandOutput(out string, n int) string {
	start := strings.Index(out, fmt.Sprintf("%s%d\n", outputMark, n))
	if start < 0 {
		return tail(out, 3000)
	}
	out = out[start+len(outputMark):]
	out = out[strings.IndexByte(out, '\n')+1:]
	if end := strings.Index(out, outputMark); end >= 0 {
		out = out[:end]
	}
	return tail(out, 3000)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// readmeOutcome is what one command did.
type readmeOutcome struct {
	statuses []int
	exit     int
	ran      bool
}

// parseReadmeStatus reads the $README_STATUS file of a run.
func parseReadmeStatus(data string, n int) []readmeOutcome {
	out := make([]readmeOutcome, n)
	cur := -1
	sc := bufio.NewScanner(strings.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		switch f[0] {
		case "command":
			cur = v
		case "status":
			if cur >= 0 && cur < n {
				out[cur].statuses = append(out[cur].statuses, v)
			}
		case "exit":
			if cur >= 0 && cur < n {
				out[cur].exit, out[cur].ran = v, true
			}
		}
	}
	return out
}

// requireTool returns the path of a program a test needs: in CI (CI=true)
// its absence fails the test, elsewhere it skips it, saying why.
func requireTool(t *testing.T, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s is not installed: %s (apt-get install %s; .ci/run installs it)", name, why, name)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// gpt2dBinary builds gpt2d once per test process (CGO_ENABLED=0, as
// released) and returns its path; TestMain removes it.
func gpt2dBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "gpt2d-bin-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "gpt2d")
		cmd := exec.Command("go", "build", "-o", built.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// cleanEnv is the test process's environment without GPT2D_* variables:
// a developer's own settings (an exported GPT2D_API_KEY, GPT2D_MODEL...)
// must not change what the gpt2d processes under test do.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GPT2D_") {
			env = append(env, kv)
		}
	}
	return env
}

// removeBuilt deletes the binary gpt2dBinary built, if any.
func removeBuilt() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

func TestReadmeRunsTopToBottom(t *testing.T) {
	bash := requireTool(t, "bash", "the README's examples are bash")
	requireTool(t, "curl", "the README's examples call the API with curl")
	requireTool(t, "jq", "the README's examples read JSON answers with jq")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []readmeCommand
	for _, b := range blocks {
		cmds = append(cmds, b.commands...)
	}
	if len(cmds) < 20 {
		t.Fatalf("only %d commands found in the README's sh blocks", len(cmds))
	}

	// A checkout after `make run`: bin/gpt2d, models/gpt2.gpt2d, data/.
	bin := gpt2dBinary(t)
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	must(os.Symlink(bin, filepath.Join(dir, "bin", "gpt2d")))
	must(os.MkdirAll(filepath.Join(dir, "models"), 0o755))
	tiny, _ := filepath.Abs("../../testdata/gpt2-tiny")
	convert := exec.Command(bin, "weights", "convert", "--from", tiny, "--out", filepath.Join(dir, "models", "gpt2.gpt2d"))
	if out, err := convert.CombinedOutput(); err != nil {
		t.Fatalf("convert: %v\n%s", err, out)
	}
	env := append(cleanEnv(), "GPT2D_BCRYPT_COST=4", "NO_COLOR=1")
	cmd := exec.Command(bin, "serve", "--model", "models/gpt2.gpt2d", "--addr", "127.0.0.1:0", "--data", "data/gpt2d.db")
	cmd.Dir, cmd.Env = dir, env
	s := serve(t, cmd)
	addr := strings.TrimPrefix(s.url, "http://")

	status := filepath.Join(t.TempDir(), "status")
	script := readmeScript(blocks, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, bash, "-c", script)
	run.Dir = dir
	run.Env = append(env, "README_STATUS="+status)
	out, _ := run.CombinedOutput()
	data, _ := os.ReadFile(status)
	outcomes := parseReadmeStatus(string(data), len(cmds))

	for i, c := range cmds {
		o := outcomes[i]
		where := fmt.Sprintf("README.md:%d: %s", c.line, strings.SplitN(c.text, "\n", 2)[0])
		if !o.ran {
			t.Fatalf("%s\n  did not run to its end (the script stopped: an unset variable?)\n%s\nserver log (tail):\n%s",
				where, commandOutput(string(out), i), tail(s.logs.String(), 2000))
		}
		if o.exit != c.wantExit {
			t.Fatalf("%s\n  exit status %d, want %d\n%s\nserver log (tail):\n%s", where, o.exit, c.wantExit, commandOutput(string(out), i), tail(s.logs.String(), 2000))
		}
		for _, got := range o.statuses {
			ok := got/100 == 2
			if c.wantStatus != 0 {
				ok = got == c.wantStatus
			}
			if !ok {
				want := "2xx"
				if c.wantStatus != 0 {
					want = strconv.Itoa(c.wantStatus)
				}
				t.Fatalf("%s\n  HTTP %d, want %s\n%s", where, got, want, commandOutput(string(out), i))
			}
		}
		if c.wantStatus != 0 && len(o.statuses) == 0 {
			t.Fatalf("%s\n  announces HTTP %d but made no request\n%s", where, c.wantStatus, commandOutput(string(out), i))
		}
	}
	t.Logf("%d README commands in %d blocks ran in order", len(cmds), len(blocks))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func TestReadmeBlocksParse(t *testing.T) {
	md := "intro\n```sh\nA=1   # exit 0\ncurl -X POST $H/x \\\n  -d y   # 201 created\n# a comment\n\ncurl $H/nope   # → 404\n```\n" +
		"<!-- readme-test: skip (starts a server) -->\n```sh\nmake run\n```\n```python\nprint(1)\n```\n```sh\nbin/gpt2d generate x   # exit 1 when full\n```\n"
	blocks, err := readmeBlocks(md)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 {
		t.Fatalf("%d blocks, want 2: %+v", len(blocks), blocks)
	}
	got := blocks[0].commands
	if len(got) != 3 || got[1].wantStatus != 201 || !strings.Contains(got[1].text, "-d y") || got[2].wantStatus != 404 || got[0].line != 3 {
		t.Fatalf("commands %+v", got)
	}
	if c := blocks[1].commands[0]; c.wantExit != 1 || c.wantStatus != 0 {
		t.Fatalf("exit annotation: %+v", c)
	}
	if _, err := readmeBlocks("```sh\nno end\n"); err == nil {
		t.Fatal("unterminated block accepted")
	}
}
