package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// File is one file of a repository, downloaded or found in place.
type File struct {
	Name string // name in the repository, e.g. "model.safetensors"
	Path string // where it is on disk
	Size int64
	// SHA256 is the checksum verified against the Hub's, for LFS files.
	SHA256 string
	// Commit is the commit the revision resolved to, if the Hub said.
	Commit string
	// Present means the file was already there and nothing was fetched.
	Present bool
}

// URL returns the resolve URL of a file of repo at revision.
func (c *Client) URL(repo, revision, name string) string {
	return c.BaseURL() + "/" + repo + "/resolve/" + url.PathEscape(revision) + "/" + name
}

// Download fetches one file of repo at revision into dir, unless dir
// already has it. The data goes to "<name>.part", which is resumed with an
// HTTP Range request if an earlier attempt (or run) left one, checked
// against the size and, for LFS files, the SHA-256 the Hub announces, and
// only then renamed to name. A checksum mismatch removes the partial file
// and returns an error matching ErrChecksum.
func (c *Client) Download(ctx context.Context, repo, revision, name, dir string) (File, error) {
	u := c.URL(repo, revision, name)
	final := filepath.Join(dir, name)
	part := final + ".part"
	f := File{Name: name, Path: final}
	if ok, err := exists(final); err != nil || ok {
		if st, err := os.Stat(final); err == nil {
			f.Size = st.Size()
		}
		f.Present = true
		return f, err
	}
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	delay := c.RetryDelay
	if delay <= 0 {
		delay = time.Second
	}
	start := time.Now()
	var meta fileMeta
	for attempt := 1; ; attempt++ {
		var err error
		meta, err = c.fetchOnce(ctx, u, name, part)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return f, fmt.Errorf("download %s: interrupted (run again to resume): %w", name, ctx.Err())
		}
		if !retryable(err) || attempt >= attempts {
			return f, err
		}
		c.logf("%s: %v\n%s: trying again in %s (attempt %d of %d)\n", name, err, name, delay, attempt+1, attempts)
		select {
		case <-ctx.Done():
			return f, fmt.Errorf("download %s: interrupted (run again to resume): %w", name, ctx.Err())
		case <-time.After(delay):
		}
		delay *= 2
	}
	sum, size, err := fileSHA256(part)
	if err != nil {
		return f, err
	}
	f.Size, f.Commit = size, meta.commit
	if meta.size >= 0 && size != meta.size {
		os.Remove(part)
		return f, fmt.Errorf("GET %s: got %d bytes, the Hub announced %d; removed the partial download %s, run again to download it afresh", u, size, meta.size, part)
	}
	if meta.sha256 != "" {
		if sum != meta.sha256 {
			os.Remove(part)
			return f, fmt.Errorf("GET %s: %w: the file's SHA-256 is %s, the Hub says %s; removed the partial download %s, run again to download it afresh", u, ErrChecksum, sum, meta.sha256, part)
		}
		f.SHA256 = sum
	}
	if err := os.Rename(part, final); err != nil {
		return f, describeDiskError(err, dir)
	}
	verified := ""
	if f.SHA256 != "" {
		verified = ", SHA-256 verified"
	}
	c.logf("fetched %s: %s in %s%s\n", name, formatBytes(size), time.Since(start).Round(100*time.Millisecond), verified)
	return f, nil
}

// fileMeta is what the Hub's responses say about a file.
type fileMeta struct {
	sha256 string // of an LFS file, from X-Linked-Etag (or ETag)
	commit string // X-Repo-Commit
	size   int64  // total size, -1 if unknown
	seen   int    // responses noted so far
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// note records the headers of one response of a redirect chain. The
// checksum of an LFS file comes from X-Linked-Etag wherever in the chain,
// or the ETag of the first response (the Hub's, not the CDN's), when it is
// a SHA-256.
func (m *fileMeta) note(r *http.Response) {
	if r == nil {
		return
	}
	m.seen++
	h := r.Header
	if m.sha256 == "" {
		etag := h.Get("X-Linked-Etag")
		if etag == "" && m.seen == 1 {
			etag = h.Get("ETag")
		}
		etag = strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
		if sha256Hex.MatchString(etag) {
			m.sha256 = etag
		}
	}
	if v := h.Get("X-Repo-Commit"); v != "" && m.commit == "" {
		m.commit = v
	}
	if v, err := strconv.ParseInt(h.Get("X-Linked-Size"), 10, 64); err == nil && m.size < 0 {
		m.size = v
	}
}

// fetchOnce makes one attempt at downloading u into part, resuming it if
// it has data.
func (c *Client) fetchOnce(ctx context.Context, u, name, part string) (fileMeta, error) {
	meta := fileMeta{size: -1}
	var have int64
	if st, err := os.Stat(part); err == nil {
		have = st.Size()
	}
	// The attempt is cancelled if nothing arrives for StallTimeout; the
	// timer is reset by every write of the body to disk.
	stall := c.StallTimeout
	if stall <= 0 {
		stall = time.Minute
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	startTimer := c.startStallTimer
	if startTimer == nil {
		startTimer = func(d time.Duration, f func()) stallTimer { return time.AfterFunc(d, f) }
	}
	timer := startTimer(stall, func() { cancel(fmt.Errorf("%w for %s", errStalled, stall)) })
	defer timer.Stop()
	req, err := c.request(actx, u, have)
	if err != nil {
		return meta, err
	}
	resp, err := c.httpClient(&meta).Do(req)
	if err != nil {
		return meta, &NetworkError{URL: u, Err: stalled(actx, err)}
	}
	defer resp.Body.Close()
	meta.note(resp)
	have, complete, err := c.resumeAt(resp, u, part, have, &meta)
	if err != nil || complete {
		return meta, err
	}

	dir := filepath.Dir(part)
	if meta.size > have {
		if err := checkSpace(dir, meta.size-have); err != nil {
			return meta, err
		}
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if have == 0 {
		flags |= os.O_TRUNC
	}
	out, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return meta, describeDiskError(err, dir)
	}
	p := c.newProgress(name, have, meta.size)
	p.onWrite = func() { timer.Reset(stall) }
	w := &errWriter{w: out}
	_, err = io.CopyBuffer(io.MultiWriter(w, p), struct{ io.Reader }{resp.Body}, make([]byte, 256<<10))
	p.finish()
	if serr := out.Sync(); err == nil && w.err == nil && serr != nil {
		w.err = serr
	}
	if cerr := out.Close(); err == nil && w.err == nil && cerr != nil {
		w.err = cerr
	}
	switch {
	case w.err != nil:
		return meta, fmt.Errorf("write %s: %w", part, describeDiskError(w.err, dir))
	case err != nil:
		return meta, &NetworkError{URL: u, Err: stalled(actx, err), Done: have + p.session()}
	case meta.size >= 0 && have+p.session() < meta.size:
		return meta, &NetworkError{URL: u, Err: io.ErrUnexpectedEOF, Done: have + p.session()}
	}
	return meta, nil
}

// request is the GET of u from byte have on (the whole file when have
// is 0), with the token if there is one.
func (c *Client) request(ctx context.Context, u string, have int64) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "gpt2d")
	req.Header.Set("Accept-Encoding", "identity") // byte offsets must be the file's
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	return req, nil
}

// httpClient follows at most 10 redirects, noting what each hop says of
// the file in meta, and drops the token when a redirect leaves the Hub's
// host (for its CDN).
func (c *Client) httpClient(meta *fileMeta) *http.Client {
	return &http.Client{
		Transport: c.Transport,
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			meta.note(r.Response)
			if r.URL.Host != via[0].URL.Host {
				r.Header.Del("Authorization") // the token is for the Hub only
			}
			return nil
		},
	}
}

// resumeAt reads resp's status for a GET of u that asked for the bytes
// from have on: it returns where the body starts in the file (0 for a
// whole file), or complete when part already holds the whole file. A
// range the server got wrong removes part (errRestart); any other status
// is a *StatusError.
func (c *Client) resumeAt(resp *http.Response, u, part string, have int64, meta *fileMeta) (start int64, complete bool, err error) {
	switch resp.StatusCode {
	case http.StatusOK:
		if meta.size < 0 {
			meta.size = resp.ContentLength
		}
		return 0, false, nil // a full response, whether or not we asked for a range
	case http.StatusPartialContent:
		first, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || first != have {
			os.Remove(part)
			return 0, false, fmt.Errorf("GET %s: %w (asked for byte %d, got %q)", u, errRestart, have, resp.Header.Get("Content-Range"))
		}
		if meta.size < 0 {
			meta.size = total
		}
		return have, false, nil
	case http.StatusRequestedRangeNotSatisfiable:
		// Nothing after byte have: the part may be complete already.
		if _, total, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && total == have {
			meta.size = total
			return have, true, nil
		}
		os.Remove(part)
		return 0, false, fmt.Errorf("GET %s: %w (the partial file was longer than the file)", u, errRestart)
	}
	final := ""
	if resp.Request != nil && resp.Request.URL.String() != u {
		fu := *resp.Request.URL
		fu.RawQuery = "" // CDN URLs carry signatures
		final = fu.String()
	}
	return 0, false, &StatusError{URL: u, Final: final, Code: resp.StatusCode, Status: resp.Status, TokenSent: c.Token != ""}
}

// errStalled means an attempt received nothing for the stall timeout.
var errStalled = errors.New("no data received")

// stalled returns the stall error instead of err when the attempt's
// context was cancelled by the stall timer.
func stalled(actx context.Context, err error) error {
	if cause := context.Cause(actx); errors.Is(cause, errStalled) {
		return cause
	}
	return err
}

// errWriter remembers a write error so that it can be told apart from a
// read error after io.Copy.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// parseContentRange parses "bytes first-last/total" or "bytes */total".
func parseContentRange(s string) (first, total int64, ok bool) {
	s, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	total, err := strconv.ParseInt(tot, 10, 64)
	if err != nil {
		total = -1
	}
	if rng == "*" {
		return 0, total, err == nil
	}
	lo, _, found := strings.Cut(rng, "-")
	first, err = strconv.ParseInt(lo, 10, 64)
	return first, total, found && err == nil
}

// fileSHA256 returns the hex SHA-256 and size of the file at path.
func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(struct{ io.Writer }{h}, struct{ io.Reader }{f}, make([]byte, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
