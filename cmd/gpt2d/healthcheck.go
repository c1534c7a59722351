package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// runHealthcheck implements `gpt2d healthcheck`: exit 0 when the server's
// /health answers 200 (model loaded), 1 otherwise. It is the Docker
// HEALTHCHECK of the distroless image, which has no curl or shell.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b := newBinder("healthcheck", os.Getenv, stderr)
	var addr string
	b.str(&addr, "addr", "GPT2D_ADDR", "127.0.0.1:8000", "the server's listen address (an empty host means this host)")
	url := b.fs.String("url", "", "the server's base URL, instead of --addr (e.g. http://127.0.0.1:8000)")
	timeout := b.fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := b.parse(args); err != nil {
		return err
	}
	base := *url
	if base == "" {
		host := addr
		if strings.HasPrefix(host, ":") {
			host = "127.0.0.1" + host
		}
		host = strings.Replace(host, "0.0.0.0:", "127.0.0.1:", 1)
		host = strings.Replace(host, "[::]:", "[::1]:", 1)
		base = "http://" + host
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(base, "/")+"/health", nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s: %s", req.URL, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(string(body)))
	return nil
}
