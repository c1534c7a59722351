package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clientDir holds the OpenAI client check: package.json and
// package-lock.json pin the official `openai` npm package; node_modules
// is installed there on first use and git-ignored.
const clientDir = "../../testdata/openai-client"

// TestOfficialOpenAIClient builds the real gpt2d binary, serves the tiny
// model with it, and points the official OpenAI Node.js client at it with
// an API key: models.list, a completion and a chat completion, each also
// streamed, and the client's typed errors.
func TestOfficialOpenAIClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: cannot run the official OpenAI client (npm package openai)")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed: cannot install the official OpenAI client (npm package openai)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	installClient(t, ctx, npm)

	bin := filepath.Join(t.TempDir(), "gpt2d")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	data := filepath.Join(t.TempDir(), "gpt2d.db")
	env := append(os.Environ(), "GPT2D_BCRYPT_COST=4")
	create := exec.CommandContext(ctx, bin, "users", "create", "--data", data, "--username", "client")
	create.Env = env
	create.Stdin = strings.NewReader("client-password\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("users create: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, serveArgs(data, "--model-name", "gpt2-tiny")...)
	cmd.Env = env
	s := serve(t, cmd)

	session := s.token(t, "client", "client-password")
	code, body := s.call(t, "POST", "/users/me/keys", session, `{"name":"openai-node"}`)
	if code != 201 {
		t.Fatalf("create key: %d %s", code, body)
	}
	var key struct{ Key string }
	json.Unmarshal([]byte(body), &key)

	check := exec.CommandContext(ctx, node, "check.mjs")
	check.Dir = clientDir
	check.Env = append(os.Environ(), "GPT2D_URL="+s.url, "GPT2D_API_KEY="+key.Key)
	var stderr strings.Builder
	check.Stderr = &stderr
	out, err := check.Output()
	if err != nil {
		t.Fatalf("OpenAI client check: %v\n%s\n%s\nserver log:\n%s", err, out, stderr.String(), s.logs)
	}
	var summary struct {
		Model, Text, Streamed string
		Chunks                int
		Chat, ChatStreamed    string
		ChatChunks            int
	}
	if err := json.Unmarshal(out, &summary); err != nil || summary.Model != "gpt2-tiny" || summary.Text == "" || summary.Streamed != summary.Text ||
		summary.ChatStreamed != summary.Chat || summary.ChatChunks < 3 {
		t.Fatalf("client summary %s (%v)", out, err)
	}
	t.Logf("openai-node: %s", out)

	// The server counted it: usage of the key, and metrics.
	code, body = s.call(t, "GET", "/users/me/usage", session, "")
	if code != 200 || !strings.Contains(body, `"name":"openai-node"`) {
		t.Fatalf("usage after the client ran: %d %s", code, body)
	}
}

// installClient installs the pinned client with npm ci, unless that
// version is installed already.
func installClient(t *testing.T, ctx context.Context, npm string) {
	t.Helper()
	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	b, err := os.ReadFile(filepath.Join(clientDir, "package-lock.json"))
	if err != nil || json.Unmarshal(b, &lock) != nil {
		t.Fatalf("package-lock.json: %v", err)
	}
	want := lock.Packages["node_modules/openai"].Version
	var installed struct{ Version string }
	if b, err := os.ReadFile(filepath.Join(clientDir, "node_modules", "openai", "package.json")); err == nil {
		json.Unmarshal(b, &installed)
	}
	if installed.Version == want {
		return
	}
	ci := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	ci.Dir = clientDir
	if out, err := ci.CombinedOutput(); err != nil {
		t.Fatalf("npm ci (openai %s): %v\n%s", want, err, out)
	}
}
