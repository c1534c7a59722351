package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"gpt2d/auth"
	"gpt2d/store"
)

// runUsers implements `gpt2d users create|list`. It opens the store
// directly, so it runs while the server is stopped; against a running
// server use the API (POST /users with an admin token).
func runUsers(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const usage = "usage: gpt2d users create --username NAME [--role user|admin] | users list"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	var cfg Config
	b := newBinder("users "+args[0], os.Getenv, stderr)
	cfg.bindStore(b)
	switch args[0] {
	case "create":
		cfg.bindAuth(b)
		username := b.fs.String("username", "", "account name (3-50 characters)")
		role := b.fs.String("role", "user", "user or admin")
		if err := b.parse(args[1:]); err != nil {
			return err
		}
		return createUser(cfg, *username, store.Role(*role), stdin, stdout, stderr)
	case "list":
		if err := b.parse(args[1:]); err != nil {
			return err
		}
		return listUsers(cfg, stdout)
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("%w: users: unknown command %q", errUsage, args[0])
}

func createUser(cfg Config, username string, role store.Role, stdin io.Reader, stdout, stderr io.Writer) error {
	if n := len([]rune(username)); n < 3 || n > 50 {
		return errors.New("users create: --username must have 3 to 50 characters")
	}
	if !role.Valid() {
		return fmt.Errorf("users create: --role %q: want user or admin", role)
	}
	db, err := openStoreForCLI(cfg.Data, false)
	if errors.Is(err, store.ErrLocked) {
		// gpt2d serve holds the store: ask it, over its local socket.
		password, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		var u localUser
		err = newLocalClient(cfg.Data).do("POST", "/users", localCreate{username, password, role}, &u)
		if err != nil {
			return fmt.Errorf("users create: %w", socketHint(err, cfg.Data))
		}
		fmt.Fprintf(stdout, "created %s %q (id %d) through the running server\n", u.Role, u.Username, u.ID)
		return nil
	}
	if err != nil {
		return err
	}
	defer db.Close()
	// The key only matters for signing tokens, which this command never
	// does: a throwaway one keeps the store's key untouched.
	key := make([]byte, auth.MinKeyBytes)
	rand.Read(key)
	svc, err := auth.New(db, key, auth.Config{BcryptCost: cfg.BcryptCost})
	if err != nil {
		return err
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	u, err := createAccount(svc, db, username, password, role, "cli")
	if err != nil {
		return fmt.Errorf("users create: %w", err)
	}
	fmt.Fprintf(stdout, "created %s %q (id %d)\n", u.Role, u.Username, u.ID)
	return nil
}

// readPassword asks twice on a terminal, without echo; otherwise it reads
// the first line of stdin (for scripts: `printf '%s\n' "$PW" | gpt2d users
// create ...`). Passwords are never taken from argv.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		restore, err := echoOff(int(f.Fd()))
		if err != nil {
			return "", fmt.Errorf("turn terminal echo off: %w", err)
		}
		defer restore()
		fmt.Fprint(stderr, "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Repeat password: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("passwords do not match")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on stdin")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func listUsers(cfg Config, stdout io.Writer) error {
	var users []localUser
	db, err := openStoreForCLI(cfg.Data, true)
	switch {
	case errors.Is(err, store.ErrLocked):
		if err := newLocalClient(cfg.Data).do("GET", "/users", nil, &users); err != nil {
			return fmt.Errorf("users list: %w", socketHint(err, cfg.Data))
		}
	case err != nil:
		return err
	default:
		defer db.Close()
		all, err := db.ListUsers(0, 1<<31-1)
		if err != nil {
			return err
		}
		for _, u := range all {
			users = append(users, toLocalUser(&u))
		}
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tUSERNAME\tROLE\tDISABLED\tCREATED")
	for _, u := range users {
		fmt.Fprintf(w, "%d\t%s\t%s\t%v\t%s\n", u.ID, u.Username, u.Role, u.Disabled, u.CreatedAt.Format(time.RFC3339))
	}
	return w.Flush()
}

func lockedHint(err error) error {
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w (is gpt2d serve running? stop it, or use the HTTP API)", err)
	}
	return err
}

// socketHint explains a store held by a server whose local socket did
// not answer (an older gpt2d, or a socket path too long) and says what to
// do instead.
func socketHint(err error, data string) error {
	if errors.Is(err, errNoLocalServer) {
		return fmt.Errorf("%s is in use by a running gpt2d serve, which does not answer on %s (%v): "+
			"create the account through its API instead (curl -X POST $H/users with an admin's token, "+
			"see the README), or stop the server and run this again", data, socketPath(data), err)
	}
	return err
}
