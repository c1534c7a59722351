package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"gpt2d/weights"
	"gpt2d/weights/hub"
)

const weightsUsage = `usage:
  gpt2d weights fetch   [--repo openai-community/gpt2 | --model gpt2] [--revision main] [--dir models/NAME]
  gpt2d weights convert --from DIR [--out DIR.gpt2d] [--dtype f32|bf16|f16|int8]
  gpt2d weights verify  FILE

fetch downloads config.json, model.safetensors and the tokenizer from the
Hugging Face Hub (HF_ENDPOINT, default https://huggingface.co; HF_TOKEN is
sent as a bearer token if set). convert writes gpt2d's memory-mappable
weights file; verify checks one against its recorded checksum.
`

// runWeights runs "gpt2d weights ...": fetch, convert or verify. They stop
// when ctx ends (Ctrl-C), leaving no partial file behind.
func runWeights(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return weightsCmd(ctx, args, stdout, stderr, os.Getenv, isTerminal(stderr))
}

// weightsCmd is runWeights with its surroundings passed in: getenv reads
// the environment, and tty says stderr is a terminal (for progress bars).
func weightsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, tty bool) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, weightsUsage)
		return errUsage
	}
	switch args[0] {
	case "fetch":
		return weightsFetch(ctx, args[1:], stdout, stderr, getenv, tty)
	case "convert":
		return weightsConvert(ctx, args[1:], stdout, stderr)
	case "verify":
		return weightsVerify(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, weightsUsage)
		return nil
	}
	fmt.Fprintf(stderr, "gpt2d weights: unknown command %q\n\n%s", args[0], weightsUsage)
	return errUsage
}

func weightsFetch(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, tty bool) error {
	fs := flag.NewFlagSet("gpt2d weights fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repo := fs.String("repo", "", "Hub repository (default openai-community/gpt2)")
	model := fs.String("model", "", "model name instead of --repo: gpt2, distilgpt2, gpt2-medium, gpt2-large, gpt2-xl")
	revision := fs.String("revision", "main", "branch, tag or commit")
	dir := fs.String("dir", "", "directory to download into (default models/NAME)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("weights fetch: unexpected argument %q", fs.Arg(0))
	}
	switch {
	case *repo != "" && *model != "":
		return errors.New("weights fetch: give --repo or --model, not both")
	case *model != "":
		r, err := hub.Repo(*model)
		if err != nil {
			return fmt.Errorf("weights fetch: %w", err)
		}
		*repo = r
	case *repo == "":
		*repo = "openai-community/gpt2"
	}
	if strings.Count(*repo, "/") != 1 {
		return fmt.Errorf("weights fetch: --repo %q is not owner/name", *repo)
	}
	if *dir == "" {
		name := path.Base(*repo)
		if *model != "" {
			name = *model
		}
		*dir = filepath.Join("models", name)
	}
	token := getenv("HF_TOKEN")
	if token == "" {
		token = getenv("HUGGING_FACE_HUB_TOKEN")
	}
	c := &hub.Client{Endpoint: getenv("HF_ENDPOINT"), Token: token, Progress: stderr, Terminal: tty}
	fmt.Fprintf(stderr, "fetching %s@%s from %s into %s\n", *repo, *revision, c.BaseURL(), *dir)
	si, err := c.FetchModel(ctx, *repo, *revision, *dir)
	if err != nil && ctx.Err() != nil {
		return errInterrupted
	}
	if err != nil {
		return fmt.Errorf("weights fetch: %w", err)
	}
	from := ""
	if si.Repo != "" {
		from = fmt.Sprintf(" (%s@%s", si.Repo, si.Revision)
		if si.Commit != "" {
			from += ", commit " + si.Commit
		}
		from += ")"
	}
	fmt.Fprintf(stdout, "%s%s is ready; convert it with: gpt2d weights convert --from %s\n", *dir, from, *dir)
	return nil
}

func weightsConvert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gpt2d weights convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "Hugging Face model directory (config.json, model.safetensors, tokenizer)")
	out := fs.String("out", "", "weights file to write (default: the directory's path + .gpt2d)")
	dtypeName := fs.String("dtype", "f32", "matrix element type: f32, bf16, f16 or int8")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("weights convert: unexpected argument %q", fs.Arg(0))
	}
	if *from == "" {
		fmt.Fprint(stderr, weightsUsage)
		return errors.New("weights convert: --from DIR is required")
	}
	if *out == "" {
		*out = filepath.Clean(*from) + ".gpt2d"
	}
	dt, err := weights.ParseDType(*dtypeName)
	if err != nil {
		return fmt.Errorf("weights convert: --dtype: %w", err)
	}
	fmt.Fprintf(stderr, "converting %s to %s (%s matrices)\n", *from, *out, dt)
	start := time.Now()
	if err := weights.Convert(*from, *out, weights.ConvertOptions{DType: dt, Version: weightsVersion(), Context: ctx}); err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return fmt.Errorf("weights convert: %w", err)
	}
	size := int64(0)
	if st, err := os.Stat(*out); err == nil {
		size = st.Size()
	}
	fmt.Fprintf(stdout, "wrote %s: %.1f MB in %s\n", *out, float64(size)/1e6, time.Since(start).Round(10*time.Millisecond))
	return nil
}

func weightsVerify(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, weightsUsage)
		return errors.New("weights verify: give one FILE")
	}
	if err := weights.Verify(args[0]); err != nil {
		return fmt.Errorf("weights %w", err)
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return nil
}

// weightsVersion is the gpt2d version recorded in converted files: the
// module version the binary was built at, or "devel".
func weightsVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
