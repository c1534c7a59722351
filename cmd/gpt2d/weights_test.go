package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gpt2d/weights"
)

var weightsTinyDir = filepath.Join("..", "..", "testdata", "gpt2-tiny")

func TestRunWeightsConvertsAndVerifies(t *testing.T) {
	out := filepath.Join(t.TempDir(), "tiny.gpt2d")
	if err := runWeights(context.Background(), []string{"convert", "--from", weightsTinyDir, "--out", out, "--dtype", "bf16"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	ck, err := weights.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.DType != weights.BF16 || ck.Metadata[weights.MetaGPT2DVersion] == "" {
		t.Errorf("dtype %s, metadata %v", ck.DType, ck.Metadata[weights.MetaGPT2DVersion])
	}
	if err := runWeights(context.Background(), []string{"verify", out}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
}

func TestWeightsConvertDefaultsOutNextToTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gpt2")
	os.Mkdir(dir, 0o755)
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		data, err := os.ReadFile(filepath.Join(weightsTinyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	var stdout, stderr bytes.Buffer
	if err := weightsCmd(context.Background(), []string{"convert", "--from", dir + "/"}, &stdout, &stderr, noEnv, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + ".gpt2d"); err != nil {
		t.Errorf("no %s.gpt2d: %v\n%s", dir, err, stdout.String())
	}
}

func noEnv(string) string { return "" }

func TestWeightsUsageErrors(t *testing.T) {
	for i, args := range [][]string{
		{},
		{"frobnicate"},
		{"convert"},
		{"convert", "--from", "x", "--dtype", "q4"},
		{"fetch", "--repo", "a/b", "--model", "gpt2"},
		{"fetch", "--model", "llama"},
		{"verify"},
	} {
		var stdout, stderr bytes.Buffer
		err := weightsCmd(context.Background(), args, &stdout, &stderr, noEnv, false)
		if err == nil {
			t.Errorf("%q: no error", args)
		}
		if i < 2 && !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want usage", args, err)
		}
	}
}

// TestWeightsFetchThenConvert fetches the tiny fixture from a fake Hub,
// named by HF_ENDPOINT, with HF_TOKEN, then converts it: the provenance of
// the download reaches the converted file.
func TestWeightsFetchThenConvert(t *testing.T) {
	model, err := os.ReadFile(filepath.Join(weightsTinyDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(model)
	lfsSHA := hex.EncodeToString(sum[:])
	var auth []string
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, "cdn:"+r.Header.Get("Authorization"))
		http.ServeFile(w, r, filepath.Join(weightsTinyDir, "model.safetensors"))
	}))
	defer cdn.Close()
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, "hub:"+r.Header.Get("Authorization"))
		name, ok := strings.CutPrefix(r.URL.Path, "/openai-community/gpt2/resolve/v1.0/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Repo-Commit", "c0ffee")
		if name == "model.safetensors" {
			w.Header().Set("X-Linked-Etag", `"`+lfsSHA+`"`)
			http.Redirect(w, r, cdn.URL+"/lfs/"+lfsSHA, http.StatusFound)
			return
		}
		http.ServeFile(w, r, filepath.Join(weightsTinyDir, name))
	}))
	defer hub.Close()
	env := func(k string) string {
		return map[string]string{"HF_ENDPOINT": hub.URL, "HF_TOKEN": "hf_test"}[k]
	}
	dir := filepath.Join(t.TempDir(), "gpt2")
	var stdout, stderr bytes.Buffer
	if err := weightsCmd(context.Background(), []string{"fetch", "--revision", "v1.0", "--dir", dir}, &stdout, &stderr, env, false); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, a := range auth {
		if a != "hub:Bearer hf_test" && a != "cdn:" {
			t.Errorf("Authorization seen: %q", a)
		}
	}
	out := filepath.Join(t.TempDir(), "gpt2.gpt2d")
	if err := weightsCmd(context.Background(), []string{"convert", "--from", dir, "--out", out}, &stdout, &stderr, env, false); err != nil {
		t.Fatal(err)
	}
	ck, err := weights.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for k, want := range map[string]string{
		weights.MetaSourceRepo:     "openai-community/gpt2",
		weights.MetaSourceRevision: "v1.0",
		weights.MetaSourceCommit:   "c0ffee",
		weights.MetaSourceSHA256:   lfsSHA,
	} {
		if got := ck.Metadata[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// A second fetch finds everything in place and uses no network.
	hub.Close()
	stderr.Reset()
	if err := weightsCmd(context.Background(), []string{"fetch", "--revision", "v1.0", "--dir", dir}, &stdout, &stderr, env, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "nothing to fetch") {
		t.Errorf("second fetch said %q", stderr.String())
	}
}
