package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"gpt2d/auth"
)

// runKeys implements `gpt2d keys rotate`: a new random JWT signing key
// replaces the one in the key file (--jwt-secret-file, by default beside
// the store). Every access token signed with the old key stops working —
// within a second in running servers, which watch the file — and clients
// get new ones with their refresh tokens or by signing in; refresh tokens
// and API keys are not signed with it and stay valid. It does not need the
// store, so it runs while the server serves.
func runKeys(args []string, stdout, stderr io.Writer) error {
	const keysUsage = "usage: gpt2d keys rotate [--data PATH] [--jwt-secret-file PATH]"
	switch {
	case len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help"):
		fmt.Fprintln(stdout, keysUsage)
		return nil
	case len(args) == 0 || args[0] != "rotate":
		fmt.Fprintln(stderr, keysUsage)
		return errUsage
	}
	var cfg Config
	b := newBinder("keys rotate", os.Getenv, stderr)
	cfg.bindStore(b)
	cfg.bindKeyFile(b)
	if err := b.parse(args[1:]); err != nil {
		return err
	}
	if os.Getenv("GPT2D_JWT_SECRET") != "" {
		return errors.New("keys rotate: the signing key comes from GPT2D_JWT_SECRET; set a new value there and restart")
	}
	file := cfg.keyFile()
	if file == "" {
		return errors.New("keys rotate: this PostgreSQL store keeps its signing key in the database; give every replica a shared --jwt-secret-file to rotate it with this command")
	}
	if err := auth.RotateKeyFile(file); err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	fmt.Fprintf(stdout, "rotated the JWT signing key in %s: every access token issued before is now refused\n", file)
	return nil
}
