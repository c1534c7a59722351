package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gpt2d/store"
	"gpt2d/store/postgres"
)

// runBackup implements `gpt2d backup FILE`: a consistent snapshot of the
// store (bbolt Tx.WriteTo), written atomically to FILE ("-" for stdout).
// Before FILE takes its place the snapshot is verified (store.Verify: it
// opens and passes the consistency check); then its path, size and
// SHA-256 are printed on stderr.
//
// While gpt2d serve runs it holds the store's file lock, so the snapshot
// is taken through the server instead: with --url (GPT2D_URL) the command
// logs in as an admin (GPT2D_TOKEN, or --username and a password from
// stdin) and downloads GET /admin/backup.
func runBackup(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) error {
	var cfg Config
	b := newBinder("backup", os.Getenv, stderr)
	cfg.bindStore(b)
	var server, username string
	b.str(&server, "url", "GPT2D_URL", "", "back up through a running server at this URL (e.g. http://127.0.0.1:8000)")
	b.str(&username, "username", "GPT2D_BACKUP_USERNAME", "", "admin to log in as with --url (password from stdin); or set GPT2D_TOKEN")
	if err := b.parse(args); err != nil {
		return err
	}
	if b.fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: gpt2d backup [--data PATH | --url URL] FILE")
		return errors.New("backup: want exactly one FILE")
	}
	dst := b.fs.Arg(0)

	if server == "" {
		if postgres.IsURL(cfg.Data) {
			return errPGBackup
		}
		db, err := store.Open(cfg.Data, store.Options{ReadOnly: true})
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("backup: %w; the server is running: use --url to back up through it", err)
		}
		if err != nil {
			return err
		}
		defer db.Close()
		return writeVerified(dst, stderr, func(w io.Writer) error {
			_, err := db.WriteTo(w)
			return err
		})
	}

	token := os.Getenv("GPT2D_TOKEN")
	if token == "" {
		if username == "" {
			return errors.New("backup: --url needs GPT2D_TOKEN or --username")
		}
		password, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		if token, err = login(ctx, server, username, password); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(server, "/")+"/admin/backup", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("backup: server answered %s: %s", resp.Status, body)
	}
	return writeVerified(dst, stderr, func(w io.Writer) error {
		_, err := io.Copy(w, resp.Body)
		return err
	})
}

// writeVerified writes a snapshot to path ("-": stdout) through a
// temporary file that must pass store.Verify first, and reports the path,
// size and SHA-256 of what it wrote on report.
func writeVerified(path string, report io.Writer, write func(io.Writer) error) error {
	var size int64
	var sum string
	verify := func(tmp string) error {
		if err := store.Verify(tmp); err != nil {
			return fmt.Errorf("backup: the snapshot fails verification, nothing written: %w", err)
		}
		var err error
		size, sum, err = fileDigest(tmp)
		return err
	}
	shown := path
	if path == "-" {
		// Verify in a temporary file, then copy it out.
		dir, err := os.MkdirTemp("", "gpt2d-backup-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		tmp := filepath.Join(dir, "snapshot.db")
		if err := writeAtomically(tmp, write, verify); err != nil {
			return err
		}
		f, err := os.Open(tmp)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(os.Stdout, f); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		shown = "(stdout)"
	} else if err := writeAtomically(path, write, verify); err != nil {
		return err
	}
	fmt.Fprintf(report, "backup: %s verified: %d bytes, sha256 %s\n", shown, size, sum)
	return nil
}

// fileDigest returns the size and hex SHA-256 of the file at path.
func fileDigest(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func login(ctx context.Context, server, username, password string) (string, error) {
	form := url.Values{"username": {username}, "password": {password}}
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(server, "/")+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Detail      any    `json:"detail"`
	}
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&tok)
	if resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		return "", fmt.Errorf("login: %s: %v", resp.Status, tok.Detail)
	}
	return tok.AccessToken, nil
}

// writeAtomically writes through a temporary file beside path, fsyncs it,
// has verify check it, and renames it into place, so path is never a
// partial or unverified snapshot.
func writeAtomically(path string, write func(io.Writer) error, verify func(tmp string) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	if err := verify(tmp.Name()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
