package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"gpt2d/gpt2"
	"gpt2d/weights"
	"gpt2d/weights/hub"
)

// errNoModel reports a --model that names no file, no directory and no
// model gpt2d knows how to fetch.
var errNoModel = errors.New("no such model")

// modelSource says how to find and, on first use, make a model.
type modelSource struct {
	modelsDir string              // where fetched and converted models go
	getenv    func(string) string // HF_ENDPOINT, HF_TOKEN, HF_HOME...
	progress  io.Writer           // fetch and convert progress
	tty       bool                // progress is a terminal (progress bars)
}

// resolve returns the path gpt2.Load should open for spec, which is
//
//   - a converted .gpt2d file or a Hugging Face checkpoint directory;
//   - a Hugging Face cache directory, models--ORG--NAME (its refs/main
//     snapshot) or models--ORG--NAME/snapshots/REV;
//   - a model name — gpt2, distilgpt2, gpt2-medium, gpt2-large, gpt2-xl,
//     or a Hub repository such as openai-community/gpt2 — which is
//     converted once into MODELS_DIR/NAME.gpt2d, from the Hugging Face
//     cache when it holds the model, else fetched into MODELS_DIR/NAME
//     (as `vllm serve NAME` and `llama-server -hf` do).
//
// A missing path is an error that names the command that makes it.
func (s modelSource) resolve(ctx context.Context, spec string) (string, error) {
	if spec == "" {
		return "", fmt.Errorf("%w: --model is empty", errNoModel)
	}
	repo, isName := s.repoName(spec)
	if st, err := os.Stat(spec); err == nil {
		if !st.IsDir() {
			return spec, nil
		}
		dir, err := hfDir(spec)
		// A directory that holds no checkpoint does not hide a model
		// name: in gpt2d's source tree, gpt2/ is a Go package.
		if err == nil || !isName {
			return dir, err
		}
	} else if !isName {
		return "", s.missing(spec)
	}
	name := path.Base(repo)
	out := filepath.Join(s.modelsDir, name+".gpt2d")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	src, err := s.cached(repo)
	if err != nil {
		src = filepath.Join(s.modelsDir, name)
		if err := s.fetch(ctx, repo, src); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(s.modelsDir, 0o755); err != nil {
		return "", fmt.Errorf("models directory: %w", err)
	}
	fmt.Fprintf(s.progress, "converting %s to %s (first use)\n", src, out)
	opts := weights.ConvertOptions{DType: weights.F32, Version: weightsVersion(), Context: ctx}
	if err := weights.Convert(src, out, opts); err != nil {
		return "", fmt.Errorf("model %s: %w", spec, err)
	}
	return out, nil
}

// repoName returns the Hub repository spec names, if it can be a model
// name rather than a path: a short name from hub.Repo's list, or
// owner/name whose owner is not a local directory and which does not look
// like a file (a .gpt2d or .safetensors name, an absolute or ./ path).
func (s modelSource) repoName(spec string) (string, bool) {
	if filepath.IsAbs(spec) || strings.HasPrefix(spec, ".") || strings.Count(spec, "/") > 1 ||
		strings.HasSuffix(spec, ".gpt2d") || strings.HasSuffix(spec, ".safetensors") {
		return "", false
	}
	if owner, _, ok := strings.Cut(spec, "/"); ok {
		if st, err := os.Stat(owner); err == nil && st.IsDir() {
			return "", false
		}
	}
	repo, err := hub.Repo(spec)
	return repo, err == nil
}

// missing explains a path that does not exist and how to make it.
func (s modelSource) missing(spec string) error {
	hint := "pass --model gpt2 (or distilgpt2, gpt2-medium, gpt2-large, gpt2-xl, owner/name) to fetch and convert a model on first use"
	if strings.HasSuffix(spec, ".gpt2d") {
		base := strings.TrimSuffix(spec, ".gpt2d")
		hint = fmt.Sprintf("make it with `gpt2d weights fetch --model %s --dir %s && gpt2d weights convert --from %s --out %s` (or `make weights`), or %s",
			path.Base(base), base, base, spec, hint)
	} else {
		hint = fmt.Sprintf("fetch a checkpoint into it with `gpt2d weights fetch --dir %s`, write a random one with `gpt2d random-checkpoint %s`, or %s", spec, spec, hint)
	}
	return fmt.Errorf("%w: %s does not exist: %s", errNoModel, spec, hint)
}

// hfDir returns the checkpoint directory dir stands for: dir itself when it
// has a config.json, or the snapshot a Hugging Face cache directory
// (models--ORG--NAME) points to with refs/main, or its only snapshot.
func hfDir(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return dir, nil
	}
	snaps := filepath.Join(dir, "snapshots")
	if ref, err := os.ReadFile(filepath.Join(dir, "refs", "main")); err == nil {
		snap := filepath.Join(snaps, strings.TrimSpace(string(ref)))
		if _, err := os.Stat(filepath.Join(snap, "config.json")); err == nil {
			return snap, nil
		}
	}
	entries, err := os.ReadDir(snaps)
	if err != nil {
		return "", fmt.Errorf("%w: %s has no config.json: not a Hugging Face checkpoint, nor a cache directory models--ORG--NAME", errNoModel, dir)
	}
	var found []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(snaps, e.Name(), "config.json")); err == nil {
			found = append(found, filepath.Join(snaps, e.Name()))
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w: %s: no snapshot with a config.json", errNoModel, dir)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w: %s has %d snapshots and no refs/main: pass one of %s", errNoModel, dir, len(found), strings.Join(found, ", "))
}

// cached returns the Hugging Face cache's snapshot of repo, if the cache
// holds a complete one ($HF_HUB_CACHE, $HF_HOME/hub, or
// ~/.cache/huggingface/hub).
func (s modelSource) cached(repo string) (string, error) {
	root := s.getenv("HF_HUB_CACHE")
	if root == "" {
		home := s.getenv("HF_HOME")
		if home == "" {
			cache := s.getenv("XDG_CACHE_HOME")
			if cache == "" {
				h, err := os.UserHomeDir()
				if err != nil {
					return "", err
				}
				cache = filepath.Join(h, ".cache")
			}
			home = filepath.Join(cache, "huggingface")
		}
		root = filepath.Join(home, "hub")
	}
	dir, err := hfDir(filepath.Join(root, "models--"+strings.ReplaceAll(repo, "/", "--")))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
		return "", err
	}
	return dir, nil
}

// fetch downloads repo's checkpoint into dir.
func (s modelSource) fetch(ctx context.Context, repo, dir string) error {
	token := s.getenv("HF_TOKEN")
	if token == "" {
		token = s.getenv("HUGGING_FACE_HUB_TOKEN")
	}
	c := &hub.Client{Endpoint: s.getenv("HF_ENDPOINT"), Token: token, Progress: s.progress, Terminal: s.tty}
	fmt.Fprintf(s.progress, "fetching %s from %s into %s (first use)\n", repo, c.BaseURL(), dir)
	if _, err := c.FetchModel(ctx, repo, "main", dir); err != nil {
		return fmt.Errorf("fetch %s: %w", repo, err)
	}
	return nil
}

// loadServeModel resolves --model (fetching and converting a named model
// on first use) and loads it for gpt2d serve.
func loadServeModel(ctx context.Context, cfg Config, stderr io.Writer, log *slog.Logger) (*gpt2.Model, error) {
	progress, tty := io.Discard, isTerminal(stderr)
	if tty {
		progress = stderr // progress bars for a person; logs only otherwise
	}
	src := modelSource{modelsDir: cfg.ModelsDir, getenv: os.Getenv, progress: progress, tty: tty}
	if _, err := os.Stat(cfg.Model); err != nil {
		log.Info("resolving model", "model", cfg.Model, "models_dir", cfg.ModelsDir)
	}
	p, err := src.resolve(ctx, cfg.Model)
	if err != nil {
		return nil, err
	}
	return gpt2.LoadWithOptions(p, gpt2.Options{Threads: cfg.Threads})
}
