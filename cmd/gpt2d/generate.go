package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"gpt2d/gpt2"
)

const generateUsage = `usage: gpt2d generate --model PATH|NAME [flags] [--] PROMPT

Continues PROMPT ("-": read it from stdin) with the model and streams the
continuation to stdout as it is generated. --temperature 0 is greedy and
deterministic; --seed makes sampling reproducible. Ctrl-C stops it.

flags:
`

// modelFlags are the flags of the commands that load a model.
type modelFlags struct {
	model     string
	modelsDir string
	threads   int
}

func (m *modelFlags) bind(b *binder) {
	b.str(&m.model, "model", "GPT2D_MODEL", "models/gpt2.gpt2d", "converted weights file, Hugging Face checkpoint or cache directory, or a model name (gpt2, openai-community/gpt2, ...) fetched on first use")
	b.str(&m.modelsDir, "models-dir", "GPT2D_MODELS_DIR", "models", "where models named by --model are fetched and converted")
	b.int(&m.threads, "threads", "GPT2D_THREADS", 0, "kernel threads (0: all CPUs)")
}

// resolve returns the path of the model --model names, fetching and
// converting a named one on first use with progress on stderr.
func (m *modelFlags) resolve(ctx context.Context, stderr io.Writer) (string, error) {
	src := modelSource{modelsDir: m.modelsDir, getenv: os.Getenv, progress: stderr, tty: isTerminal(stderr)}
	p, err := src.resolve(ctx, m.model)
	if err != nil && ctx.Err() != nil {
		return "", errInterrupted
	}
	return p, err
}

// load resolves and loads the model.
func (m *modelFlags) load(ctx context.Context, stderr io.Writer) (*gpt2.Model, error) {
	p, err := m.resolve(ctx, stderr)
	if err != nil {
		return nil, err
	}
	return gpt2.LoadWithOptions(p, gpt2.Options{Threads: m.threads})
}

func runGenerate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	b := newBinder("generate", os.Getenv, stderr)
	b.fs.Usage = func() { fmt.Fprint(b.fs.Output(), generateUsage); b.fs.PrintDefaults() }
	var mf modelFlags
	mf.bind(b)
	var req gpt2.Request
	var stops []string
	seed := b.fs.String("seed", "", "random seed (an unsigned integer): the same seed gives the same text")
	b.fs.IntVar(&req.MaxNewTokens, "max-new-tokens", 64, "most tokens to generate (0: until the context is full or <|endoftext|>)")
	b.fs.Float64Var(&req.Temperature, "temperature", 1, "sampling temperature; 0 is greedy")
	b.fs.IntVar(&req.TopK, "top-k", 50, "sample from the K most likely tokens (0: all)")
	b.fs.Float64Var(&req.TopP, "top-p", 1, "sample from the smallest set of tokens with this much probability")
	b.fs.BoolVar(&req.IgnoreEOS, "ignore-eos", false, "keep generating past <|endoftext|>")
	b.fs.Func("stop", "stop before this string (repeatable)", func(s string) error { stops = append(stops, s); return nil })
	if err := b.parse(args); err != nil {
		return err
	}
	if b.fs.NArg() != 1 {
		b.fs.Usage()
		return fmt.Errorf("%w: generate: want one PROMPT (\"-\" for stdin), got %d arguments", errUsage, b.fs.NArg())
	}
	req.Stop = stops
	if *seed != "" {
		var s uint64
		if _, err := fmt.Sscan(*seed, &s); err != nil {
			return fmt.Errorf("%w: generate: --seed %q: want an unsigned integer", errUsage, *seed)
		}
		req.Seed = &s
	}
	if req.MaxNewTokens < 0 {
		return fmt.Errorf("%w: generate: --max-new-tokens %d: must not be negative", errUsage, req.MaxNewTokens)
	}
	prompt, err := readArg(b.fs.Arg(0), stdin)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	req.Prompt = prompt

	m, err := mf.load(ctx, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	eng := gpt2.NewEngine(m, gpt2.EngineConfig{Slots: 1, QueueSize: 1})
	defer eng.Close()

	out := bufio.NewWriter(stdout)
	res, err := eng.Generate(ctx, req, func(c gpt2.Chunk) error {
		if _, err := out.WriteString(c.Text); err != nil {
			return err
		}
		return out.Flush() // streamed: each piece as soon as it is complete
	})
	if tty := isTerminal(stdout); tty && res != nil {
		out.WriteString("\n")
	}
	out.Flush()
	var cl *gpt2.ContextLengthError
	var pe *gpt2.ParamError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		fmt.Fprintln(stdout)
		return errInterrupted
	case errors.As(err, &cl):
		return fmt.Errorf("generate: the prompt has %d tokens and the context holds %d: %s",
			cl.PromptTokens, cl.Limit, contextAdvice(cl))
	case errors.As(err, &pe):
		return fmt.Errorf("%w: generate: --%s: %s", errUsage, strings.ReplaceAll(pe.Param, "_", "-"), pe.Msg)
	case errors.Is(err, gpt2.ErrEmptyPrompt):
		return fmt.Errorf("%w: generate: the prompt is empty", errUsage)
	}
	return fmt.Errorf("generate: %w", err)
}

// contextAdvice says how to make a request fit the context window.
func contextAdvice(cl *gpt2.ContextLengthError) string {
	room := cl.Limit - cl.PromptTokens
	if room <= 0 {
		return fmt.Sprintf("the context is full; shorten the prompt by at least %d tokens", cl.PromptTokens-cl.Limit+1)
	}
	return fmt.Sprintf("%d new tokens do not fit; ask for at most --max-new-tokens %d, or shorten the prompt", cl.NewTokens, room)
}

// readArg returns arg, or all of stdin when arg is "-".
func readArg(arg string, stdin io.Reader) (string, error) {
	if arg != "-" {
		return arg, nil
	}
	b, err := io.ReadAll(stdin)
	if err != nil {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	return string(b), nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
