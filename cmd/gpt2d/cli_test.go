package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gpt2d/weights"
)

// These tests run the built gpt2d binary (gpt2dBinary), as a user would.

var tinyDir, _ = filepath.Abs("../../testdata/gpt2-tiny")

// result is what one run of the binary did.
type result struct {
	stdout, stderr string
	code           int
}

// runBin runs the built gpt2d with args in dir (the test's temporary
// directory when ""), stdin from the string, and returns its outcome.
func runBin(t *testing.T, dir, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(gpt2dBinary(t), args...)
	if dir == "" {
		dir = t.TempDir()
	}
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), append([]string{"GPT2D_BCRYPT_COST=4"}, env...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(errOut.String(), "panic:") || strings.Contains(errOut.String(), "goroutine ") {
		t.Fatalf("gpt2d %s panicked:\n%s", strings.Join(args, " "), errOut.String())
	}
	return result{out.String(), errOut.String(), code}
}

// reference is the tiny model's float64 reference (testdata).
type reference struct {
	Prompts []struct {
		Text   string
		IDs    []int
		Greedy struct {
			MaxNewTokens int `json:"max_new_tokens"`
			IDs          []int
			Text         string
		}
	}
}

func loadReference(t *testing.T) reference {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tinyDir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestGenerateGreedyIsTheReferenceContinuation(t *testing.T) {
	ref := loadReference(t)
	checked := 0
	for _, p := range ref.Prompts {
		if strings.ContainsRune(p.Greedy.Text, '\uFFFD') || strings.HasPrefix(p.Text, "-") || p.Text == "" {
			continue // bytes cut mid-character stream differently than a whole decode shows them
		}
		args := []string{"generate", "--model", tinyDir, "--temperature", "0", "--ignore-eos",
			"--max-new-tokens", itoa(p.Greedy.MaxNewTokens), "--", p.Text}
		r := runBin(t, "", "", nil, args...)
		if r.code != 0 || r.stdout != p.Greedy.Text {
			t.Errorf("generate %q: exit %d\n got %q\nwant %q\n%s", p.Text, r.code, r.stdout, p.Greedy.Text, r.stderr)
		}
		checked++
		if checked == 3 {
			break
		}
	}
	if checked == 0 {
		t.Fatal("no reference prompt checked")
	}
	// The prompt from stdin gives the same text; greedy is deterministic.
	p := ref.Prompts[0]
	r := runBin(t, "", p.Text, nil, "generate", "--model", tinyDir, "--temperature", "0", "--ignore-eos",
		"--max-new-tokens", itoa(p.Greedy.MaxNewTokens), "-")
	if r.code != 0 || r.stdout != p.Greedy.Text {
		t.Errorf("generate from stdin: exit %d, %q, want %q", r.code, r.stdout, p.Greedy.Text)
	}
}

func TestGenerateSeedStopAndBadInput(t *testing.T) {
	gen := func(args ...string) result {
		return runBin(t, "", "", nil, append([]string{"generate", "--model", tinyDir}, args...)...)
	}
	a := gen("--seed", "7", "--max-new-tokens", "30", "Once upon a time")
	b := gen("--seed", "7", "--max-new-tokens", "30", "Once upon a time")
	if a.code != 0 || a.stdout == "" || a.stdout != b.stdout {
		t.Fatalf("same seed, different text: %q / %q (%s)", a.stdout, b.stdout, a.stderr)
	}
	// A stop string taken from the text itself ends it just before.
	if i := strings.Index(a.stdout[1:], " "); i > 0 {
		stop := a.stdout[i+1 : i+3]
		s := gen("--seed", "7", "--max-new-tokens", "30", "--stop", stop, "Once upon a time")
		if s.code != 0 || strings.Contains(s.stdout, stop) || !strings.HasPrefix(a.stdout, s.stdout) {
			t.Fatalf("--stop %q: %q (full %q)", stop, s.stdout, a.stdout)
		}
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"new tokens beyond the context", []string{"--max-new-tokens", "500", "Hi"}, 1, "--max-new-tokens"},
		{"prompt beyond the context", []string{"--max-new-tokens", "0", strings.Repeat("word ", 200)}, 1, "context is full"},
		{"no prompt", nil, 2, "PROMPT"},
		{"bad temperature", []string{"--temperature", "-1", "Hi"}, 2, "--temperature"},
		{"bad seed", []string{"--seed", "x", "Hi"}, 2, "--seed"},
		{"missing model file", []string{"--model", "models/nope.gpt2d", "Hi"}, 1, "gpt2d weights fetch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := gen(tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, tt.code, r.stderr, tt.want)
			}
		})
	}
}

func TestTokenizeEncodesDecodesAndShowsPieces(t *testing.T) {
	ref := loadReference(t)
	p := ref.Prompts[0]
	r := runBin(t, "", "", nil, "tokenize", "--model", tinyDir, "--", p.Text)
	var ids []int
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ids) != nil || itoa(ids...) != itoa(p.IDs...) {
		t.Fatalf("tokenize %q: exit %d %q, want %v", p.Text, r.code, r.stdout, p.IDs)
	}
	r = runBin(t, "", strings.TrimSpace(r.stdout), nil, "tokenize", "--model", tinyDir, "--decode", "-")
	if r.code != 0 || r.stdout != p.Text {
		t.Fatalf("decode: %q, want %q", r.stdout, p.Text)
	}
	r = runBin(t, "", "", nil, "tokenize", "--model", tinyDir, "--decode", "15496 995")
	if r.stdout != "Hello world" {
		t.Fatalf("decode of spaced ids: %q", r.stdout)
	}
	if r := runBin(t, "", "", nil, "tokenize", "--model", tinyDir, "--decode", "[1, 99999]"); r.code != 2 {
		t.Fatalf("id outside the vocabulary: exit %d %s", r.code, r.stderr)
	}

	// --pieces: the bytes of the pieces are the text, and the offsets are
	// character spans that cover it.
	text := "héllo 😀 wörld"
	r = runBin(t, "", "", nil, "tokenize", "--model", tinyDir, "--pieces", text)
	if r.code != 0 {
		t.Fatalf("pieces: %d %s", r.code, r.stderr)
	}
	var all []byte
	runes := []rune(text)
	last := 0
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var pc struct {
			ID      int
			Piece   any
			Bytes   []int
			Offsets [2]int
		}
		if err := json.Unmarshal(sc.Bytes(), &pc); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		for _, b := range pc.Bytes {
			all = append(all, byte(b))
		}
		if text, ok := pc.Piece.(string); ok {
			if got := string(runes[pc.Offsets[0]:pc.Offsets[1]]); got != text {
				t.Errorf("piece %q spans %q", text, got)
			}
		}
		start, end := pc.Offsets[0], pc.Offsets[1]
		if start > last || end <= start {
			t.Errorf("piece %+v leaves a gap after character %d", pc, last)
		}
		last = end
	}
	if string(all) != text || last != len(runes) {
		t.Fatalf("pieces give %q up to %d, want %q", all, last, text)
	}
}

func TestRandomCheckpointIsHuggingFaceLayout(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "small.json")
	cfgJSON := `{"model_type":"gpt2","n_layer":2,"n_embd":32,"n_head":4,"n_positions":64,"vocab_size":50257}`
	os.WriteFile(cfgFile, []byte(cfgJSON), 0o644)
	write := func(out, seed string) result {
		return runBin(t, "", "", nil, "random-checkpoint", "--config", cfgFile, "--dtype", "bf16",
			"--seed", seed, "--tokenizer", tinyDir, filepath.Join(dir, out))
	}
	for _, o := range []struct{ out, seed string }{{"a", "3"}, {"b", "3"}, {"c", "4"}} {
		if r := write(o.out, o.seed); r.code != 0 {
			t.Fatalf("random-checkpoint: %d %s", r.code, r.stderr)
		}
	}
	read := func(out, name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, out, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if string(read("a", "config.json")) != cfgJSON {
		t.Error("config.json is not the given file")
	}
	for _, name := range []string{"tokenizer.json", "vocab.json", "merges.txt", "generation_config.json"} {
		read("a", name)
	}
	if !bytes.Equal(read("a", "model.safetensors"), read("b", "model.safetensors")) {
		t.Error("the same seed gave different weights")
	}
	if bytes.Equal(read("a", "model.safetensors"), read("c", "model.safetensors")) {
		t.Error("different seeds gave the same weights")
	}
	f, err := weights.OpenSafetensors(filepath.Join(dir, "a", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string][]int{
		"wte.weight": {50257, 32}, "wpe.weight": {64, 32}, "ln_f.weight": {32},
		"h.0.attn.c_attn.weight": {32, 96}, "h.1.mlp.c_fc.weight": {32, 128}, "h.1.mlp.c_proj.weight": {128, 32},
		"h.0.attn.bias": {1, 1, 64, 64},
	}
	for name, shape := range want {
		tt, ok := f.Tensors[name]
		if !ok || itoa(tt.Shape...) != itoa(shape...) || tt.DType != weights.BF16 {
			t.Errorf("%s: %v %v %s, want %v BF16", name, ok, tt.Shape, tt.DType, shape)
		}
	}
	if len(f.Tensors) != 4+2*(12+1) || f.Metadata["format"] != "pt" {
		t.Errorf("%d tensors, metadata %v", len(f.Tensors), f.Metadata)
	}
	// It is a model: it converts and generates.
	if r := runBin(t, "", "", nil, "generate", "--model", filepath.Join(dir, "a"), "--max-new-tokens", "5", "Hi"); r.code != 0 || r.stdout == "" {
		t.Fatalf("generate on the random checkpoint: %d %q %s", r.code, r.stdout, r.stderr)
	}
	for _, bad := range [][]string{{"--config", "gpt5", "x"}, {"--dtype", "int8", "x"}, {}} {
		if r := runBin(t, "", "", nil, append([]string{"random-checkpoint", "--tokenizer", tinyDir}, bad...)...); r.code != 2 {
			t.Errorf("random-checkpoint %v: exit %d", bad, r.code)
		}
	}
}

func TestNamedConfigsAreTheReleasedShapes(t *testing.T) {
	for name, params := range map[string]int64{"distilgpt2": 81_912_576, "gpt2": 124_439_808, "gpt2-medium": 354_823_168,
		"gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200} {
		cfg, ok := weights.RandomShapes[name]
		if !ok {
			t.Fatalf("%s missing", name)
		}
		var n int64
		for _, s := range weights.CanonicalShapes(cfg) {
			k := int64(1)
			for _, d := range s {
				k *= int64(d)
			}
			n += k
		}
		if n != params {
			t.Errorf("%s: %d parameters, want %d", name, n, params)
		}
		b, _ := json.Marshal(weights.HFConfigJSON(cfg, weights.F32))
		if back, err := weights.ParseConfig(b); err != nil || back != cfg {
			t.Errorf("%s: config.json round trip %+v %v", name, back, err)
		}
	}
}

func TestVersionAndHelpExitZero(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if r := runBin(t, "", "", nil, args...); r.code != 0 || !strings.HasPrefix(r.stdout, "gpt2d ") {
			t.Errorf("%v: %d %q", args, r.code, r.stdout)
		}
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"serve", "--help"}, {"generate", "--help"}, {"tokenize", "-h"},
		{"users", "--help"}, {"users", "create", "--help"}, {"users", "list", "--help"}, {"backup", "--help"},
		{"weights", "--help"}, {"weights", "fetch", "--help"}, {"weights", "convert", "--help"}, {"random-checkpoint", "--help"},
		{"bench", "--help"}, {"healthcheck", "--help"}, {"version", "--help"},
		{"keys", "--help"}, {"keys", "rotate", "--help"}, {"store", "--help"}, {"store", "migrate", "--help"}, {"store", "copy", "--help"}} {
		if r := runBin(t, "", "", nil, args...); r.code != 0 {
			t.Errorf("%v: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"generate", "--no-such-flag", "x"}, {"users"}, {"weights"},
		{"keys"}, {"keys", "frobnicate"}, {"store"}, {"store", "frobnicate"}, {"store", "copy", "--from", "x.db"}} {
		if r := runBin(t, "", "", nil, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, r.code)
		}
	}
}

func TestCtrlCStopsGenerate(t *testing.T) {
	// A long context makes a generation that runs for a while: a random
	// checkpoint, 2 layers, 4096 positions.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "long.json")
	os.WriteFile(cfg, []byte(`{"n_layer":2,"n_embd":64,"n_head":2,"n_positions":4096,"vocab_size":50257}`), 0o644)
	if r := runBin(t, "", "", nil, "random-checkpoint", "--config", cfg, "--tokenizer", tinyDir, filepath.Join(dir, "long")); r.code != 0 {
		t.Fatal(r.stderr)
	}
	cmd := exec.Command(gpt2dBinary(t), "generate", "--model", filepath.Join(dir, "long"), "--max-new-tokens", "0", "--ignore-eos", "Hello")
	cmd.Env = cleanEnv()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once text streams, interrupt it as Ctrl-C does.
	first := make([]byte, 1)
	if _, err := io.ReadFull(stdout, first); err != nil {
		t.Fatalf("no output: %v %s", err, stderr.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	rest, _ := io.ReadAll(stdout)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("after SIGINT: %v, stderr %q, %d bytes of output", err, stderr.String(), len(rest)+1)
	}
}

func TestCancelledContextStopsBenchConvertAndRandomCheckpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if err := runBench(ctx, []string{"--model", tinyDir, "--prompt-tokens", "8", "--new-tokens", "8", "--reps", "1000"}, &out, io.Discard); !errors.Is(err, errInterrupted) {
		t.Errorf("bench: %v", err)
	}
	dir := t.TempDir()
	dst := filepath.Join(dir, "tiny.gpt2d")
	if err := runWeights(ctx, []string{"convert", "--from", tinyDir, "--out", dst}, io.Discard, io.Discard); !errors.Is(err, errInterrupted) {
		t.Errorf("convert: %v", err)
	}
	if err := runRandomCheckpoint(ctx, []string{"--config", "gpt2", "--tokenizer", tinyDir, filepath.Join(dir, "rand")}, io.Discard, io.Discard); !errors.Is(err, errInterrupted) {
		t.Errorf("random-checkpoint: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	left2, _ := filepath.Glob(filepath.Join(dir, "rand", "*.safetensors*"))
	if len(left) != 1 || len(left2) != 0 { // only the rand directory, without weights
		t.Errorf("left behind: %v %v", left, left2)
	}
}

func TestUsersCreateWhileServing(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(gpt2dBinary(t), "serve", "--model", tinyDir, "--addr", "127.0.0.1:0", "--data", "data/gpt2d.db")
	cmd.Dir, cmd.Env = dir, append(cleanEnv(), "GPT2D_BCRYPT_COST=4")
	s := serve(t, cmd)
	if !strings.Contains(s.logs.String(), "gpt2d users create --data data/gpt2d.db") {
		t.Errorf("serve with no admin does not say how to make one:\n%s", s.logs)
	}
	r := runBin(t, dir, "first-admin-password\n", nil, "users", "create", "--username", "root", "--role", "admin")
	if r.code != 0 || !strings.Contains(r.stdout, `created admin "root"`) {
		t.Fatalf("users create while serving: %d %s %s", r.code, r.stdout, r.stderr)
	}
	resp, err := http.PostForm(s.url+"/token", url.Values{"username": {"root"}, "password": {"first-admin-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login as the admin made while serving: %d", resp.StatusCode)
	}
	for _, tt := range []struct{ stdin, name, want string }{
		{"first-admin-password\n", "root", "already"}, {"short\n", "weak", "8 characters"}, {"", "nopass", "password"},
	} {
		if r := runBin(t, dir, tt.stdin, nil, "users", "create", "--username", tt.name); r.code == 0 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("users create %s: %d %q, want an error with %q", tt.name, r.code, r.stderr, tt.want)
		}
	}
	r = runBin(t, dir, "", nil, "users", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "root") || strings.Contains(r.stdout, "weak") {
		t.Fatalf("users list while serving: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if st, err := os.Stat(filepath.Join(dir, "data", "gpt2d.db.sock")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("local socket: %v %v", st, err)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, "data", "gpt2d.db.sock")); !os.IsNotExist(err) {
		t.Errorf("socket left after shutdown: %v", err)
	}
	// Stopped: the store is opened directly.
	if r := runBin(t, dir, "", nil, "users", "list"); r.code != 0 || !strings.Contains(r.stdout, "root") {
		t.Fatalf("users list, stopped: %d %s", r.code, r.stderr)
	}
}

func TestHealthcheckAndLogFormat(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(gpt2dBinary(t), "serve", "--model", tinyDir, "--addr", "127.0.0.1:0", "--data", "gpt2d.db")
	cmd.Dir, cmd.Env = dir, append(cleanEnv(), "GPT2D_BCRYPT_COST=4")
	s := serve(t, cmd)
	addr := strings.TrimPrefix(s.url, "http://")
	if r := runBin(t, "", "", []string{"GPT2D_ADDR=" + addr}, "healthcheck"); r.code != 0 || !strings.Contains(r.stdout, `"ok"`) {
		t.Fatalf("healthcheck of a healthy server: %d %s %s", r.code, r.stdout, r.stderr)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	if r := runBin(t, "", "", nil, "healthcheck", "--url", s.url, "--timeout", "2s"); r.code != 1 {
		t.Fatalf("healthcheck of a stopped server: exit %d", r.code)
	}

	// --log-format text: key=value lines.
	cmd = exec.Command(gpt2dBinary(t), "serve", "--model", tinyDir, "--addr", "127.0.0.1:0", "--data", "gpt2d.db", "--log-format", "text")
	cmd.Dir, cmd.Env = dir, cleanEnv()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		if strings.Contains(sc.Text(), "msg=listening") && strings.Contains(sc.Text(), "level=INFO") {
			return
		}
	}
	t.Fatal("no text log line for listening")
}

func TestModelResolution(t *testing.T) {
	// A Hugging Face cache holding openai-community/gpt2 (the tiny model
	// standing in), as huggingface_hub lays it out: blobs, a snapshot of
	// symlinks, refs/main.
	hfHome := t.TempDir()
	repo := filepath.Join(hfHome, "hub", "models--openai-community--gpt2")
	snap := filepath.Join(repo, "snapshots", "0123abcd")
	os.MkdirAll(snap, 0o755)
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte("0123abcd"), 0o644)
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} {
		if err := os.Symlink(filepath.Join(tinyDir, name), filepath.Join(snap, name)); err != nil {
			t.Fatal(err)
		}
	}
	ref := loadReference(t)
	p := ref.Prompts[0]
	greedy := []string{"--temperature", "0", "--ignore-eos", "--max-new-tokens", itoa(p.Greedy.MaxNewTokens), p.Text}
	work := t.TempDir()
	for _, model := range []string{repo, snap} {
		r := runBin(t, work, "", nil, append([]string{"generate", "--model", model}, greedy...)...)
		if r.code != 0 || r.stdout != p.Greedy.Text {
			t.Errorf("--model %s: %d %q %s", model, r.code, r.stdout, r.stderr)
		}
	}
	// A name: converted from the cache into the models directory on
	// first use (no network: HF_ENDPOINT points nowhere), then reused.
	env := []string{"HF_HOME=" + hfHome, "HF_ENDPOINT=http://127.0.0.1:9"}
	for range 2 {
		r := runBin(t, work, "", env, append([]string{"generate", "--model", "openai-community/gpt2", "--models-dir", "mine"}, greedy...)...)
		if r.code != 0 || r.stdout != p.Greedy.Text {
			t.Fatalf("--model openai-community/gpt2: %d %q %s", r.code, r.stdout, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "mine", "gpt2.gpt2d")); err != nil {
		t.Fatalf("not converted into the models directory: %v", err)
	}
	// A directory named like the model that holds no checkpoint (in the
	// source tree, the gpt2/ package) does not hide the name.
	os.MkdirAll(filepath.Join(work, "gpt2"), 0o755)
	if r := runBin(t, work, "", env, append([]string{"generate", "--model", "gpt2", "--models-dir", "mine"}, greedy...)...); r.code != 0 || r.stdout != p.Greedy.Text {
		t.Fatalf("--model gpt2 beside a gpt2/ directory: %d %q %s", r.code, r.stdout, r.stderr)
	}
	// Not cached, no Hub: the error says what failed.
	r := runBin(t, work, "", env, "generate", "--model", "gpt2-medium", "--models-dir", "mine", "Hi")
	if r.code != 1 || !strings.Contains(r.stderr, "gpt2-medium") {
		t.Fatalf("unreachable Hub: %d %s", r.code, r.stderr)
	}
	// serve says which command makes a missing file.
	r = runBin(t, work, "", nil, "serve", "--model", "models/gpt2.gpt2d", "--addr", "127.0.0.1:0", "--data", "x.db")
	if r.code != 1 || !strings.Contains(r.stderr, "gpt2d weights convert") {
		t.Fatalf("serve with a missing model: %d %s", r.code, r.stderr)
	}
}

// itoa formats ints for comparisons and arguments.
func itoa(v ...int) string {
	b, _ := json.Marshal(v)
	if len(v) == 1 {
		return strings.Trim(string(b), "[]")
	}
	return string(b)
}

func TestLocalAPIKeyActsAsTheBootstrapAdmin(t *testing.T) {
	dir := t.TempDir()
	start := func(env []string, extra ...string) *server {
		args := append([]string{"serve", "--model", tinyDir, "--addr", "127.0.0.1:0", "--data", "gpt2d.db"}, extra...)
		cmd := exec.Command(gpt2dBinary(t), args...)
		cmd.Dir, cmd.Env = dir, append(cleanEnv(), append([]string{"GPT2D_BCRYPT_COST=4"}, env...)...)
		return serve(t, cmd)
	}
	get := func(s *server, path, key string) int {
		code, _ := s.call(t, "GET", path, key, "")
		return code
	}
	const key = "sk-local-0123456789abcdef"
	s := start([]string{"GPT2D_API_KEY=" + key})
	for _, path := range []string{"/v1/models", "/admin/users", "/users/me"} {
		if code := get(s, path, key); code != 200 {
			t.Errorf("GET %s with the local key: %d", path, code)
		}
	}
	if code := get(s, "/v1/models", key+"x"); code != 401 {
		t.Errorf("a wrong key: %d", code)
	}
	if _, body := s.call(t, "GET", "/users/me", key, ""); !strings.Contains(body, `"role":"admin"`) {
		t.Errorf("the key's owner: %s", body)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()

	// A new key from a file replaces the old one.
	file := filepath.Join(dir, "api-key")
	os.WriteFile(file, []byte("another-local-key-0123456789\n"), 0o600)
	s = start(nil, "--api-key-file", file)
	if code := get(s, "/v1/models", "another-local-key-0123456789"); code != 200 {
		t.Errorf("key from the file: %d", code)
	}
	if code := get(s, "/v1/models", key); code != 401 {
		t.Errorf("the replaced key: %d", code)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()

	for _, bad := range []string{"short", "aaaaaaaaaa.bbbbbbbbbb.cccccccccc"} {
		r := runBin(t, dir, "", []string{"GPT2D_API_KEY=" + bad}, "serve", "--model", tinyDir, "--addr", "127.0.0.1:0", "--data", "gpt2d.db")
		if r.code != 1 || !strings.Contains(r.stderr, "local API key") {
			t.Errorf("key %q: exit %d %s", bad, r.code, r.stderr)
		}
	}
}

func TestServeOnATerminalAsksForTheFirstAdmin(t *testing.T) {
	scriptBin := requireTool(t, "script", "it gives gpt2d serve a terminal (util-linux)")
	dir := t.TempDir()
	serveCmd := shellQuote(gpt2dBinary(t)) + " serve --model " + shellQuote(tinyDir) + " --addr 127.0.0.1:0 --data gpt2d.db"
	cmd := exec.Command(scriptBin, "-qefc", serveCmd, "/dev/null")
	cmd.Dir, cmd.Env = dir, append(cleanEnv(), "GPT2D_BCRYPT_COST=4", "TERM=dumb")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	kill := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer kill.Stop()

	r := bufio.NewReader(stdout)
	var seen strings.Builder
	waitFor := func(s string) string {
		t.Helper()
		for !strings.Contains(seen.String(), s) {
			b, err := r.ReadByte()
			if err != nil {
				t.Fatalf("waiting for %q: %v\n%s", s, err, seen.String())
			}
			seen.WriteByte(b)
		}
		return seen.String()
	}
	waitFor("Name of the first admin")
	io.WriteString(stdin, "root\n")
	waitFor("Password: ")
	io.WriteString(stdin, "first-admin-password\n")
	waitFor("Repeat password: ")
	io.WriteString(stdin, "first-admin-password\n")
	waitFor(`created admin "root"`)
	waitFor("msg=listening")
	rest, _ := r.ReadString('\n')
	out := seen.String() + rest
	line := out[strings.LastIndex(out, "msg=listening"):]
	addr := strings.Fields(line[strings.Index(line, "addr=")+len("addr="):])[0]
	if strings.Contains(out, "first-admin-password") {
		t.Fatal("the password was echoed")
	}
	resp, err := http.PostForm("http://"+addr+"/token", url.Values{"username": {"root"}, "password": {"first-admin-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login as the admin made at the prompt: %d", resp.StatusCode)
	}
}

func TestServeModelNameFetchesAndConvertsOnFirstUse(t *testing.T) {
	// A fake Hub with the tiny model as openai-community/gpt2.
	var requests []string
	var mu sync.Mutex
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.URL.Path)
		mu.Unlock()
		name, ok := strings.CutPrefix(r.URL.Path, "/openai-community/gpt2/resolve/main/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Repo-Commit", "c0ffee")
		http.ServeFile(w, r, filepath.Join(tinyDir, name))
	}))
	defer hub.Close()
	dir := t.TempDir()
	env := append(cleanEnv(), "GPT2D_BCRYPT_COST=4", "HF_ENDPOINT="+hub.URL, "HF_HOME="+filepath.Join(dir, "hf"))
	cmd := exec.Command(gpt2dBinary(t), "serve", "--model", "gpt2", "--addr", "127.0.0.1:0", "--data", "gpt2d.db")
	cmd.Dir, cmd.Env = dir, env
	s := serve(t, cmd) // /health 503 during the fetch, 200 once loaded
	if _, err := os.Stat(filepath.Join(dir, "models", "gpt2.gpt2d")); err != nil {
		t.Fatalf("no converted file in the models directory: %v\n%s", err, s.logs)
	}
	mu.Lock()
	n := len(requests)
	mu.Unlock()
	if n == 0 {
		t.Fatal("the Hub was never asked")
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()

	// The second start uses the converted file: no network.
	hub.Close()
	cmd = exec.Command(gpt2dBinary(t), "serve", "--model", "gpt2", "--addr", "127.0.0.1:0", "--data", "gpt2d.db")
	cmd.Dir, cmd.Env = dir, env
	serve(t, cmd)
}
