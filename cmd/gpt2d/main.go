// Command gpt2d serves GPT-2 text generation over HTTP from a single
// static binary, and manages what that server needs:
//
//	gpt2d serve   --model PATH --addr :8000 --data data/gpt2d.db
//	gpt2d users   create --username NAME --role admin   (password from a prompt or stdin)
//	gpt2d backup  FILE
//	gpt2d store   migrate | copy --from data/gpt2d.db --to postgres://...
//	gpt2d keys    rotate
//	gpt2d weights fetch|convert ...
//	gpt2d bench   --model PATH
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
  serve     serve the HTTP API (gpt2d serve --help for flags)
  users     manage accounts: users create --username NAME [--role admin], users list
  backup    write a consistent snapshot of the store: backup [--url URL] FILE
  store     store migrate | store copy --from PATH --to postgres://...
  keys      rotate the JWT signing key: keys rotate (every access token is refused after)
  weights   fetch or convert model weights
  bench     measure generation throughput
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "gpt2d:", err)
		os.Exit(1)
	}
}

// run dispatches to a subcommand.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stderr)
	case "users":
		return runUsers(rest, stdin, stdout, stderr)
	case "backup":
		return runBackup(ctx, rest, stdin, stderr)
	case "store":
		return runStore(ctx, rest, stdout, stderr)
	case "keys":
		return runKeys(rest, stdout, stderr)
	case "weights":
		return runWeights(rest)
	case "bench":
		return runBench(rest)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "gpt2d: unknown command %q\n\n%s", cmd, usage)
	return flag.ErrHelp
}
