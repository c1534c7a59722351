package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
)

var (
	// ErrNotFound is matched by a StatusError for HTTP 404.
	ErrNotFound = errors.New("not found")
	// ErrChecksum means a downloaded file did not have the SHA-256 the
	// Hub published for it. The partial download has been removed.
	ErrChecksum = errors.New("checksum mismatch")
)

// StatusError is an HTTP error status from the Hub or its CDN.
type StatusError struct {
	URL string // the resolve URL asked for
	// Final is the URL that answered, without its query, if a redirect
	// led elsewhere.
	Final     string
	Code      int
	Status    string
	TokenSent bool // whether HF_TOKEN was sent
}

func (e *StatusError) Error() string {
	where := e.URL
	if e.Final != "" && e.Final != e.URL {
		where += " (redirected to " + e.Final + ")"
	}
	return fmt.Sprintf("GET %s: %s: %s", where, e.Status, e.hint())
}

func (e *StatusError) hint() string {
	switch {
	case e.Code == http.StatusUnauthorized && e.TokenSent:
		return "the Hub refused HF_TOKEN: check that it is a valid access token (https://huggingface.co/settings/tokens), and check the repository name — the Hub answers 401 for repositories that do not exist"
	case e.Code == http.StatusUnauthorized:
		return "the Hub wants a token: the repository is private or gated, or does not exist. Check --repo, or set HF_TOKEN to an access token that can read it (https://huggingface.co/settings/tokens)"
	case e.Code == http.StatusForbidden:
		return "HF_TOKEN may not read this repository (a gated model whose terms you have not accepted, or a token without read access): accept the terms on the model's Hub page or use another token"
	case e.Code == http.StatusNotFound:
		return "no such file, repository or revision: check --repo and --revision"
	case e.Code == http.StatusTooManyRequests:
		return "the Hub is rate-limiting these downloads: wait and run again, with HF_TOKEN set if you have one"
	case e.Code >= 500:
		return "the server failed; the Hub may be down: run again later (the download resumes), or set HF_ENDPOINT to a mirror"
	}
	return "unexpected response"
}

// Is makes a 404 StatusError match ErrNotFound.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.Code == http.StatusNotFound
}

// NetworkError is a failure to reach the Hub or a connection broken during
// a download.
type NetworkError struct {
	URL string
	Err error
	// Done is how many bytes of the file were on disk when it broke.
	Done int64
}

func (e *NetworkError) Error() string {
	var dns *net.DNSError
	switch {
	case errors.As(e.Err, &dns):
		return fmt.Sprintf("GET %s: cannot resolve %s (no network, or no DNS): check the connection, or set HF_ENDPOINT to a Hub mirror you can reach", e.URL, dns.Name)
	case e.Done > 0:
		return fmt.Sprintf("GET %s: connection broken after %s: %v (run again to resume)", e.URL, formatBytes(e.Done), e.Err)
	}
	return fmt.Sprintf("GET %s: %v: check the connection (and HTTPS_PROXY if you need a proxy), or set HF_ENDPOINT to a Hub mirror you can reach", e.URL, e.Err)
}

func (e *NetworkError) Unwrap() error { return e.Err }

// retryable reports whether another attempt at a download might succeed.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code >= 500 || se.Code == http.StatusTooManyRequests
	}
	var ne *NetworkError
	var dns *net.DNSError
	if errors.As(err, &ne) {
		return !errors.As(err, &dns) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	return errors.Is(err, errRestart)
}

// errRestart means the server did not resume where asked; the partial file
// was discarded and the next attempt starts over.
var errRestart = errors.New("server did not resume the download where asked; starting over")

// describeDiskError adds what to do to the local errors a user can fix.
func describeDiskError(err error, dir string) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: the disk holding %s is full; free some space and run again (the download resumes), or use --dir on another disk", err, dir)
	case errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: your disk quota for %s is exhausted; free some space and run again, or use --dir elsewhere", err, dir)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: %s is not writable by this user; fix its permissions or use --dir elsewhere", err, dir)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %s is on a read-only file system; use --dir elsewhere", err, dir)
	}
	return err
}
