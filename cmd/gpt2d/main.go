// Command gpt2d serves GPT-2 text generation over HTTP from a single
// static binary, runs the model from the command line, and manages what
// the server needs:
//
//	gpt2d serve    --model PATH|NAME --addr 127.0.0.1:8000 --data data/gpt2d.db
//	gpt2d generate --model PATH|NAME [--temperature 0] [--] PROMPT
//	gpt2d tokenize --model PATH|NAME [--decode | --pieces] [--] TEXT
//	gpt2d users    create --username NAME --role admin   (password from a prompt or stdin)
//	gpt2d backup   FILE
//	gpt2d store    migrate | copy --from data/gpt2d.db --to postgres://...
//	gpt2d keys     rotate
//	gpt2d weights  fetch|convert|verify ...
//	gpt2d random-checkpoint --config gpt2 OUT_DIR
//	gpt2d bench    --model PATH
//	gpt2d healthcheck [--url URL]
//	gpt2d version
//
// Every flag of serve, users and backup can also be set through a GPT2D_*
// environment variable (see config.go); secrets only through the
// environment or files, never argv.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: gpt2d <command> [flags]

commands:
  serve              serve the HTTP API (gpt2d serve --help for flags)
  generate           continue a prompt on stdout: generate --model PATH|NAME [flags] [--] PROMPT
  tokenize           text to token ids and back: tokenize --model PATH|NAME [--decode|--pieces] [--] TEXT
  users              manage accounts: users create --username NAME [--role admin], users list
  backup             write a consistent snapshot of the store: backup [--url URL] FILE
  store              store migrate | store copy --from PATH --to postgres://...
  keys               rotate the JWT signing key: keys rotate (every access token is refused after)
  weights            fetch, convert or verify model weights
  random-checkpoint  write a random-weight checkpoint in Hugging Face layout
  bench              measure generation throughput
  healthcheck        exit 0 when a server's /health answers 200 (for container health checks)
  version            print the version

Every command takes --help. PATH is a converted .gpt2d file or a Hugging
Face checkpoint directory; NAME (gpt2, distilgpt2, gpt2-medium, gpt2-large,
gpt2-xl or a Hub repository owner/name) is fetched and converted on first
use into the models directory.
`

// errUsage reports a command line that does not parse; the usage has
// been printed and the exit status is 2. An explicit --help is
// flag.ErrHelp, exit status 0.
var errUsage = errors.New("usage error")

// errInterrupted reports a command stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		if err != errUsage {
			fmt.Fprintln(os.Stderr, "gpt2d:", err)
		}
		os.Exit(2)
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(os.Stderr, "gpt2d:", err)
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "gpt2d:", err)
		os.Exit(1)
	}
}

// run dispatches to a subcommand.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdin, stderr)
	case "generate":
		return runGenerate(ctx, rest, stdin, stdout, stderr)
	case "tokenize":
		return runTokenize(ctx, rest, stdin, stdout, stderr)
	case "users":
		return runUsers(ctx, rest, stdin, stdout, stderr)
	case "backup":
		return runBackup(ctx, rest, stdin, stderr)
	case "store":
		return runStore(ctx, rest, stdout, stderr)
	case "keys":
		return runKeys(rest, stdout, stderr)
	case "weights":
		return runWeights(ctx, rest, stdout, stderr)
	case "random-checkpoint":
		return runRandomCheckpoint(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		return runVersion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "gpt2d: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

// parseFlags parses args with fs, turning a parse error into errUsage
// (fs has printed it and the usage) and keeping flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return errUsage
}
