package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gpt2d/store/pgtest"
)

// clientDir holds the OpenAI client check: package.json and
// package-lock.json pin the official `openai` npm package, which is
// installed outside the tree, in the user's cache directory (see
// installClient).
const clientDir = "../../testdata/openai-client"

// TestOfficialOpenAIClient builds the real gpt2d binary, serves the tiny
// model with it, and points the official OpenAI Node.js client at it with
// an API key: models.list, a completion and a chat completion, each also
// streamed, and the client's typed errors.
func TestOfficialOpenAIClient(t *testing.T) {
	node := requireTool(t, "node", "cannot run the official OpenAI client (npm package openai)")
	npm := requireTool(t, "npm", "cannot install the official OpenAI client (npm package openai)")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	script := installClient(t, ctx, npm)
	bin := gpt2dBinary(t)

	// The same client against each store.
	for _, kind := range []string{"bbolt", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "gpt2d.db")
			if kind == "postgres" {
				data = pgtest.NewDatabase(t)
			}
			env := append(cleanEnv(), "GPT2D_BCRYPT_COST=4")
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

			check := exec.CommandContext(ctx, node, script)
			check.Env = append(cleanEnv(), "GPT2D_URL="+s.url, "GPT2D_API_KEY="+key.Key)
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
		})
	}
}

// installClient installs the pinned client with npm ci into a directory
// of the user's cache named for the lock file's hash — never into the
// source tree — unless it is there already, and returns the path of a
// private copy of check.mjs beside that installation (node resolves the
// script's imports from its directory upwards). Installs go through a
// temporary directory renamed into place, so concurrent test runs never
// see half an installation. Without the npm registry the test is skipped,
// saying so, except in CI (CI=true) where it fails.
func installClient(t *testing.T, ctx context.Context, npm string) string {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(clientDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := os.ReadFile(filepath.Join(clientDir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	sum := sha256.Sum256(append(append([]byte{}, pkg...), lock...))
	root := filepath.Join(cache, "gpt2d", "openai-client-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(root, "node_modules", "openai", "package.json")); err != nil {
		if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
			t.Fatal(err)
		}
		tmp, err := os.MkdirTemp(filepath.Dir(root), "install-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		for name, data := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
			if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ci := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
		ci.Dir = tmp
		if out, err := ci.CombinedOutput(); err != nil {
			msg := fmt.Sprintf("npm ci could not install the official OpenAI client (is the npm registry reachable?): %v\n%s", err, out)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		// Another run may have won the race: its installation is as good.
		if err := os.Rename(tmp, root); err != nil {
			if _, statErr := os.Stat(filepath.Join(root, "node_modules", "openai")); statErr != nil {
				t.Fatal(err)
			}
		}
	}
	run, err := os.MkdirTemp(root, "run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	script, err := os.ReadFile(filepath.Join(clientDir, "check.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(run, "check.mjs")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
