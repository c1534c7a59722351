// Package hub downloads GPT-2 checkpoints from the Hugging Face Hub, or
// from a mirror that speaks its protocol: files are fetched from
// {endpoint}/{repo}/resolve/{revision}/{file}, following the Hub's
// redirects to its CDN, resuming interrupted downloads and verifying LFS
// files against the SHA-256 the Hub publishes.
package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gpt2d/weights"
)

// DefaultEndpoint is the Hugging Face Hub.
const DefaultEndpoint = "https://huggingface.co"

// Client fetches files from the Hub. The zero value works: it talks to
// DefaultEndpoint anonymously, silently, with the default transport. A
// Client is safe for concurrent use if its fields are not changed.
type Client struct {
	// Endpoint is the Hub's base URL; "" means DefaultEndpoint. The
	// command line fills it from HF_ENDPOINT.
	Endpoint string
	// Token, if set, is sent as "Authorization: Bearer <Token>" to the
	// endpoint's host, never to hosts it redirects to (the CDN). The
	// command line fills it from HF_TOKEN.
	Token string
	// Transport makes the HTTP requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Progress receives progress reports and a line per file; nil means
	// none.
	Progress io.Writer
	// Terminal says Progress is a terminal: draw a bar updated in place
	// rather than a line per 10%.
	Terminal bool
	// Attempts is how many times a file is tried when the connection
	// breaks or the server fails (5xx, 429), each attempt resuming where
	// the last stopped; 0 means 4.
	Attempts int
	// RetryDelay is the wait before the second attempt, doubling after;
	// 0 means one second.
	RetryDelay time.Duration
	// StallTimeout abandons an attempt that receives nothing (no response,
	// or no body bytes) for this long, so that a hung connection is
	// retried rather than waited on forever; 0 means one minute.
	StallTimeout time.Duration

	// startStallTimer starts an attempt's stall timer, which calls f when
	// it fires; nil means time.AfterFunc. Tests give their own, so that
	// an attempt stalls when the test says and never because a loaded
	// machine was slow.
	startStallTimer func(d time.Duration, f func()) stallTimer
}

// stallTimer is what an attempt does with its stall timer (a *time.Timer):
// push it forward on each write, stop it at the end.
type stallTimer interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// BaseURL returns the Hub endpoint the client talks to.
func (c *Client) BaseURL() string {
	if c.Endpoint == "" {
		return DefaultEndpoint
	}
	return strings.TrimRight(c.Endpoint, "/")
}

// Repo is the Hub repository of a GPT-2 model name as the Makefile and the
// set-up script spell it: "distilgpt2" is distilbert/distilgpt2, "gpt2",
// "gpt2-medium", "gpt2-large" and "gpt2-xl" are under openai-community.
// A name containing a slash is already a repository.
func Repo(model string) (string, error) {
	switch {
	case strings.Contains(model, "/"):
		return model, nil
	case model == "distilgpt2":
		return "distilbert/distilgpt2", nil
	case model == "gpt2", model == "gpt2-medium", model == "gpt2-large", model == "gpt2-xl":
		return "openai-community/" + model, nil
	}
	return "", fmt.Errorf("unknown model %q: want gpt2, distilgpt2, gpt2-medium, gpt2-large, gpt2-xl or a Hub repository owner/name", model)
}

// Required files of a GPT-2 checkpoint, and the optional ones fetched
// alongside. tokenizer.json may be replaced by vocab.json and merges.txt.
var (
	requiredFiles = []string{"config.json", "model.safetensors"}
	optionalFiles = []string{"generation_config.json"}
)

// FetchModel downloads a GPT-2 checkpoint — config.json,
// model.safetensors, tokenizer.json (or, where the repository has none,
// vocab.json and merges.txt) and generation_config.json if there is one —
// from repo at revision into dir, and records where it came from in dir's
// weights.SourceInfoFile, which it returns. Files already in dir are kept;
// if every needed file is there, nothing is fetched, no network is used,
// and the SourceInfo returned is the one on disk (zero for a checkpoint
// placed by hand).
func (c *Client) FetchModel(ctx context.Context, repo, revision, dir string) (weights.SourceInfo, error) {
	si := weights.SourceInfo{Endpoint: c.BaseURL(), Repo: repo, Revision: revision, SHA256: map[string]string{}}
	if complete(dir) {
		c.logf("%s: config.json, model.safetensors and the tokenizer are already there; nothing to fetch\n", dir)
		return weights.ReadSourceInfo(dir) // zero if placed by hand
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return si, fmt.Errorf("create %s: %w", dir, describeDiskError(err, dir))
	}
	// Keep what an earlier, interrupted fetch of the same revision learnt
	// about the files it finished.
	if old, err := weights.ReadSourceInfo(dir); err == nil && old.Repo == repo && old.Revision == revision {
		si.Commit = old.Commit
		for k, v := range old.SHA256 {
			si.SHA256[k] = v
		}
	}
	fetch := func(name string, optional bool) (bool, error) {
		f, err := c.Download(ctx, repo, revision, name, dir)
		if optional && errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if f.Commit != "" {
			si.Commit = f.Commit
		}
		if f.SHA256 != "" {
			si.SHA256[name] = f.SHA256
		}
		if !f.Present {
			return true, weights.WriteSourceInfo(dir, si)
		}
		return true, nil
	}
	for _, name := range requiredFiles {
		if _, err := fetch(name, false); err != nil {
			return si, c.withHint(err, dir)
		}
	}
	got, err := fetch("tokenizer.json", true)
	if err != nil {
		return si, c.withHint(err, dir)
	}
	if !got {
		c.logf("tokenizer.json: not in %s; fetching vocab.json and merges.txt instead\n", repo)
		for _, name := range []string{"vocab.json", "merges.txt"} {
			if _, err := fetch(name, false); err != nil {
				return si, c.withHint(err, dir)
			}
		}
	}
	for _, name := range optionalFiles {
		if _, err := fetch(name, true); err != nil {
			return si, c.withHint(err, dir)
		}
	}
	return si, weights.WriteSourceInfo(dir, si)
}

// complete reports whether dir holds every file a conversion needs.
func complete(dir string) bool {
	have := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && st.Mode().IsRegular()
	}
	return have("config.json") && have("model.safetensors") &&
		(have("tokenizer.json") || (have("vocab.json") && have("merges.txt")))
}

// withHint adds, to errors a download from elsewhere cannot fix, the way
// around the Hub.
func (c *Client) withHint(err error, dir string) error {
	var se *StatusError
	var ne *NetworkError
	if errors.As(err, &se) || errors.As(err, &ne) {
		return fmt.Errorf("%w\n(or download config.json, model.safetensors and tokenizer.json some other way and place them in %s)", err, dir)
	}
	return err
}

func (c *Client) logf(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, format, args...)
	}
}

// exists reports whether path exists as a regular file.
func exists(path string) (bool, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.Mode().IsRegular(), nil
}
