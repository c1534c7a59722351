package hub

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gpt2d/weights"
)

const (
	testRepo   = "openai-community/gpt2"
	testCommit = "607a30d783dfa663caf39e06633721c8d4cfcd7e"
)

// fakeHub mimics the Hugging Face Hub on two servers: the Hub answers
// /{repo}/resolve/{revision}/{file}, serving small files itself and
// redirecting LFS files with a 302 to the CDN, another host, as the real
// Hub does, with the file's SHA-256 in X-Linked-Etag. Both honour Range.
type fakeHub struct {
	files map[string][]byte
	lfs   map[string]bool

	hub, cdn *httptest.Server

	mu        sync.Mutex
	status    map[string]int // file → status the Hub answers instead
	breakCDN  int            // cut the next n full CDN responses half way
	corrupt   bool           // the CDN flips a byte
	noRange   bool           // the CDN ignores Range
	cdnDeny   bool           // the CDN answers 403, as S3 does for a bad signature
	stallCDN  int            // hang the next n full CDN responses half way
	hung      chan struct{}  // receives when a CDN response hangs, if set
	hubAuth   []string
	cdnAuth   []string
	cdnRanges []string
	hubHits   map[string]int
}

func newFakeHub(t *testing.T) *fakeHub {
	r := rand.New(rand.NewPCG(7, 8))
	model := make([]byte, 3<<20+12345)
	for i := range model {
		model[i] = byte(r.Uint32())
	}
	h := &fakeHub{
		files: map[string][]byte{
			"config.json":            []byte(`{"n_layer": 2}`),
			"model.safetensors":      model,
			"tokenizer.json":         []byte(`{"model": {}}`),
			"generation_config.json": []byte(`{"bos_token_id": 50256}`),
		},
		lfs:     map[string]bool{"model.safetensors": true},
		status:  map[string]int{},
		hubHits: map[string]int{},
	}
	h.hub = httptest.NewServer(http.HandlerFunc(h.serveHub))
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	t.Cleanup(h.hub.Close)
	t.Cleanup(h.cdn.Close)
	return h
}

func sha256Of(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func (h *fakeHub) serveHub(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.hubAuth = append(h.hubAuth, r.Header.Get("Authorization"))
	prefix := "/" + testRepo + "/resolve/main/"
	name, ok := strings.CutPrefix(r.URL.Path, prefix)
	h.hubHits[name]++
	code := h.status[name]
	h.mu.Unlock()
	if code != 0 {
		http.Error(w, http.StatusText(code), code)
		return
	}
	data, found := h.files[name]
	if !ok || !found {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	w.Header().Set("X-Repo-Commit", testCommit)
	if h.lfs[name] {
		sum := sha256Of(data)
		w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
		w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef01234567"`) // the pointer file's
		http.Redirect(w, r, h.cdn.URL+"/repos/aa/bb/"+sum+"?X-Amz-Signature=secret", http.StatusFound)
		return
	}
	blob := sha1.Sum(append([]byte(fmt.Sprintf("blob %d\x00", len(data))), data...))
	w.Header().Set("ETag", `"`+hex.EncodeToString(blob[:])+`"`)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}

func (h *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.cdnAuth = append(h.cdnAuth, r.Header.Get("Authorization"))
	h.cdnRanges = append(h.cdnRanges, r.Header.Get("Range"))
	cut := h.breakCDN > 0 && r.Header.Get("Range") == ""
	if cut {
		h.breakCDN--
	}
	hang := !cut && h.stallCDN > 0 && r.Header.Get("Range") == ""
	if hang {
		h.stallCDN--
	}
	corrupt, noRange, deny := h.corrupt, h.noRange, h.cdnDeny
	h.mu.Unlock()
	sum := filepath.Base(r.URL.Path)
	var data []byte
	for name, d := range h.files {
		if h.lfs[name] && sha256Of(d) == sum {
			data = d
		}
	}
	if deny || data == nil || r.URL.Query().Get("X-Amz-Signature") != "secret" {
		http.Error(w, "AccessDenied", http.StatusForbidden)
		return
	}
	if corrupt {
		data = append([]byte(nil), data...)
		data[len(data)/3] ^= 1
	}
	etag := md5.Sum(data)
	w.Header().Set("ETag", `"`+hex.EncodeToString(etag[:])+`"`) // S3's, not a SHA-256
	if cut || hang {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		if hang {
			if h.hung != nil {
				h.hung <- struct{}{}
			}
			<-r.Context().Done() // until the client gives up
		}
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	if noRange {
		r.Header.Del("Range")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func (h *fakeHub) client(out *bytes.Buffer) *Client {
	c := &Client{Endpoint: h.hub.URL, Attempts: 1, RetryDelay: time.Millisecond}
	if out != nil {
		c.Progress = out
	}
	return c
}

func checkFiles(t *testing.T, h *fakeHub, dir string, names ...string) {
	t.Helper()
	for _, name := range names {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, h.files[name]) {
			t.Errorf("%s differs from the Hub's", name)
		}
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "*.part"))
	if len(parts) > 0 {
		t.Errorf("partial files left: %v", parts)
	}
}

func TestFetchModelDownloadsEveryFile(t *testing.T) {
	h := newFakeHub(t)
	dir := filepath.Join(t.TempDir(), "models", "gpt2")
	var out bytes.Buffer
	c := h.client(&out)
	c.Token = "hf_secret"
	si, err := c.FetchModel(context.Background(), testRepo, "main", dir)
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, h, dir, "config.json", "model.safetensors", "tokenizer.json", "generation_config.json")
	want := sha256Of(h.files["model.safetensors"])
	if si.Commit != testCommit || si.SHA256["model.safetensors"] != want {
		t.Errorf("source info %+v", si)
	}
	if disk, err := weights.ReadSourceInfo(dir); err != nil || disk.Repo != testRepo || disk.Revision != "main" || disk.SHA256["model.safetensors"] != want {
		t.Errorf("source info on disk %+v, %v", disk, err)
	}
	for _, a := range h.hubAuth {
		if a != "Bearer hf_secret" {
			t.Errorf("the Hub got Authorization %q", a)
		}
	}
	if len(h.cdnAuth) == 0 {
		t.Fatal("the CDN was never asked")
	}
	for _, a := range h.cdnAuth {
		if a != "" {
			t.Errorf("the token leaked to the CDN: %q", a)
		}
	}
	log := out.String()
	// A line each time another 10% is done: at most 10, each in a new
	// tenth (reads may skip one).
	last := -1
	lines := 0
	for _, line := range strings.Split(log, "\n") {
		var pct int
		if _, err := fmt.Sscanf(line, "model.safetensors: %d%%", &pct); err == nil {
			if pct/10 <= last {
				t.Errorf("two progress lines in the same tenth:\n%s", log)
			}
			last = pct / 10
			lines++
		}
	}
	if lines < 5 || lines > 10 || last != 10 {
		t.Errorf("%d progress lines ending at %d0%%, want 5 to 10 ending at 100%%:\n%s", lines, last, log)
	}
	for _, s := range []string{"model.safetensors: 100% (3.2 MB of 3.2 MB", "fetched model.safetensors: 3.2 MB", "SHA-256 verified"} {
		if !strings.Contains(log, s) {
			t.Errorf("progress output lacks %q:\n%s", s, log)
		}
	}
}

func TestFetchModelUsesNoNetworkWhenComplete(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	var out bytes.Buffer
	c := &Client{Endpoint: "http://127.0.0.1:1", Progress: &out}
	if _, err := c.FetchModel(context.Background(), testRepo, "main", dir); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "nothing to fetch") {
		t.Errorf("output %q", out.String())
	}
}

func TestFetchModelFallsBackToVocabAndMerges(t *testing.T) {
	h := newFakeHub(t)
	delete(h.files, "tokenizer.json")
	delete(h.files, "generation_config.json")
	h.files["vocab.json"] = []byte(`{"a": 0}`)
	h.files["merges.txt"] = []byte("#version: 0.2\n")
	dir := t.TempDir()
	if _, err := h.client(nil).FetchModel(context.Background(), testRepo, "main", dir); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, h, dir, "vocab.json", "merges.txt")
}

func TestDownloadResumesAnInterruptedFile(t *testing.T) {
	h := newFakeHub(t)
	h.breakCDN = 1
	dir := t.TempDir()
	c := h.client(nil)
	_, err := c.Download(context.Background(), testRepo, "main", "model.safetensors", dir)
	var ne *NetworkError
	if !errors.As(err, &ne) || !strings.Contains(err.Error(), "run again to resume") {
		t.Fatalf("error %v, want a broken connection", err)
	}
	st, err := os.Stat(filepath.Join(dir, "model.safetensors.part"))
	if err != nil || st.Size() == 0 || st.Size() >= int64(len(h.files["model.safetensors"])) {
		t.Fatalf("partial file after the break: %v %v", st, err)
	}
	f, err := c.Download(context.Background(), testRepo, "main", "model.safetensors", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("bytes=%d-", st.Size()); h.cdnRanges[len(h.cdnRanges)-1] != want {
		t.Errorf("resumed with Range %q, want %q", h.cdnRanges[len(h.cdnRanges)-1], want)
	}
	if f.SHA256 != sha256Of(h.files["model.safetensors"]) || f.Commit != testCommit {
		t.Errorf("file %+v", f)
	}
	checkFiles(t, h, dir, "model.safetensors")
}

func TestDownloadRetriesABrokenConnection(t *testing.T) {
	h := newFakeHub(t)
	h.breakCDN = 2
	dir := t.TempDir()
	var out bytes.Buffer
	c := h.client(&out)
	c.Attempts = 3
	if _, err := c.Download(context.Background(), testRepo, "main", "model.safetensors", dir); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, h, dir, "model.safetensors")
	if !strings.Contains(out.String(), "attempt 2 of 3") {
		t.Errorf("no retry reported:\n%s", out.String())
	}
}

// manualStall is a Client.startStallTimer whose timers fire only when the
// test calls fire, and count how often each attempt pushed its timer
// forward.
type manualStall struct {
	mu     sync.Mutex
	fires  []func()
	resets []int
}

func (m *manualStall) start(_ time.Duration, f func()) stallTimer {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fires = append(m.fires, f)
	m.resets = append(m.resets, 0)
	return &manualTimer{m: m, i: len(m.fires) - 1}
}

// fire makes attempt i's timer fire.
func (m *manualStall) fire(i int) {
	m.mu.Lock()
	f := m.fires[i]
	m.mu.Unlock()
	f()
}

// manualTimer is one attempt's timer of a manualStall.
type manualTimer struct {
	m *manualStall
	i int
}

func (t *manualTimer) Reset(time.Duration) bool {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	t.m.resets[t.i]++
	return true
}

func (t *manualTimer) Stop() bool { return true }

// hangGuard bounds a wait that only a missing mechanism (never a slow
// machine) would exceed.
const hangGuard = 2 * time.Minute

func TestDownloadAbandonsAStalledConnection(t *testing.T) {
	h := newFakeHub(t)
	h.stallCDN, h.hung = 1, make(chan struct{}, 1)
	dir := t.TempDir()
	var out bytes.Buffer
	c := h.client(&out)
	var timers manualStall
	c.Attempts, c.StallTimeout, c.startStallTimer = 2, 200*time.Millisecond, timers.start
	done := make(chan error, 1)
	go func() {
		_, err := c.Download(context.Background(), testRepo, "main", "model.safetensors", dir)
		done <- err
	}()

	// The CDN sends half the file and hangs. Once the half is on disk,
	// the first attempt's timer fires, as it would after StallTimeout
	// without data; the second attempt's never does.
	select {
	case <-h.hung:
	case <-time.After(hangGuard):
		t.Fatal("the CDN response never hung")
	}
	half := int64(len(h.files["model.safetensors"]) / 2)
	part := filepath.Join(dir, "model.safetensors.part")
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(time.Millisecond) {
		if st, err := os.Stat(part); err == nil && st.Size() == half {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the half the CDN sent never reached the partial file")
		}
	}
	timers.fire(0)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangGuard):
		t.Fatal("the download never finished after the stall")
	}

	checkFiles(t, h, dir, "model.safetensors")
	if !strings.Contains(out.String(), "no data received for 200ms") || !strings.HasPrefix(h.cdnRanges[len(h.cdnRanges)-1], "bytes=") {
		t.Errorf("stall not reported or not resumed (ranges %q):\n%s", h.cdnRanges, out.String())
	}
	timers.mu.Lock()
	defer timers.mu.Unlock()
	if len(timers.fires) != 2 || timers.resets[0] == 0 || timers.resets[1] == 0 {
		t.Errorf("%d attempts' timers, pushed forward %v times by writes; want 2, each pushed", len(timers.fires), timers.resets)
	}
}

func TestDownloadRestartsWhenRangeIsIgnored(t *testing.T) {
	h := newFakeHub(t)
	h.breakCDN, h.noRange = 1, true
	dir := t.TempDir()
	c := h.client(nil)
	c.Attempts = 2
	if _, err := c.Download(context.Background(), testRepo, "main", "model.safetensors", dir); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, h, dir, "model.safetensors")
}

func TestDownloadChecksumMismatchRemovesThePartialFile(t *testing.T) {
	h := newFakeHub(t)
	h.corrupt = true
	dir := t.TempDir()
	_, err := h.client(nil).Download(context.Background(), testRepo, "main", "model.safetensors", dir)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "removed the partial download") {
		t.Fatalf("error %v, want a checksum mismatch", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left after a checksum mismatch: %v", ents)
	}
}

func TestStatusErrorsSayWhatToDo(t *testing.T) {
	for _, c := range []struct {
		code     int
		token    string
		want     []string
		attempts int
	}{
		{401, "", []string{"401 Unauthorized", "set HF_TOKEN", "place them in"}, 1},
		{401, "hf_bad", []string{"refused HF_TOKEN"}, 1},
		{403, "hf_tok", []string{"403 Forbidden", "accept the terms"}, 1},
		{404, "", []string{"404 Not Found", "check --repo and --revision"}, 1},
		{500, "", []string{"500 Internal Server Error", "run again later", "HF_ENDPOINT"}, 3},
		{503, "", []string{"503 Service Unavailable"}, 3},
	} {
		t.Run(fmt.Sprint(c.code), func(t *testing.T) {
			h := newFakeHub(t)
			h.status["config.json"] = c.code
			dir := t.TempDir()
			cl := h.client(nil)
			cl.Token, cl.Attempts = c.token, 3
			_, err := cl.FetchModel(context.Background(), testRepo, "main", dir)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			url := h.hub.URL + "/" + testRepo + "/resolve/main/config.json"
			if !strings.Contains(msg, url) {
				t.Errorf("error does not name %s: %s", url, msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %s", w, msg)
				}
			}
			if c.token != "" && strings.Contains(msg, c.token) {
				t.Errorf("error shows the token: %s", msg)
			}
			if got := h.hubHits["config.json"]; got != c.attempts {
				t.Errorf("asked %d times, want %d", got, c.attempts)
			}
			if c.code == 404 && !errors.Is(err, ErrNotFound) {
				t.Error("404 is not ErrNotFound")
			}
		})
	}
}

func TestCDNErrorNamesBothURLsWithoutSignature(t *testing.T) {
	h := newFakeHub(t)
	h.cdnDeny = true
	_, err := h.client(nil).Download(context.Background(), testRepo, "main", "model.safetensors", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "403 Forbidden") || !strings.Contains(err.Error(), "redirected to "+h.cdn.URL+"/repos/") || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDNSFailureSaysNoNetworkWithoutRetrying(t *testing.T) {
	calls := 0
	c := &Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: r.URL.Hostname(), IsNotFound: true}}
	}), RetryDelay: time.Millisecond}
	dir := filepath.Join(t.TempDir(), "gpt2")
	_, err := c.FetchModel(context.Background(), testRepo, "main", dir)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"https://huggingface.co/" + testRepo + "/resolve/main/config.json", "cannot resolve huggingface.co", "HF_ENDPOINT", "place them in " + dir} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if calls != 1 {
		t.Errorf("%d attempts, want 1", calls)
	}
}

func TestTerminalProgressDrawsABar(t *testing.T) {
	h := newFakeHub(t)
	var out bytes.Buffer
	c := h.client(&out)
	c.Terminal = true
	if _, err := c.Download(context.Background(), testRepo, "main", "model.safetensors", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "\r") || !strings.Contains(s, "100% [==============================] 3.2 MB / 3.2 MB") {
		t.Errorf("terminal output %q", s)
	}
}

func TestDiskErrorsSayWhatToDo(t *testing.T) {
	if err := checkSpace(t.TempDir(), 1<<62); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "free some space") {
		t.Errorf("checkSpace: %v", err)
	}
	err := describeDiskError(&os.PathError{Op: "write", Path: "models/gpt2/model.safetensors.part", Err: syscall.ENOSPC}, "models/gpt2")
	if !strings.Contains(err.Error(), "disk holding models/gpt2 is full") {
		t.Errorf("ENOSPC: %v", err)
	}
	err = describeDiskError(&os.PathError{Op: "open", Path: "models/gpt2", Err: syscall.EACCES}, "models/gpt2")
	if !strings.Contains(err.Error(), "not writable") {
		t.Errorf("EACCES: %v", err)
	}
	if os.Geteuid() != 0 {
		ro := t.TempDir()
		os.Chmod(ro, 0o555)
		h := newFakeHub(t)
		_, err := h.client(nil).FetchModel(context.Background(), testRepo, "main", filepath.Join(ro, "gpt2"))
		if err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only directory: %v", err)
		}
	}
}

func TestRepo(t *testing.T) {
	for model, want := range map[string]string{
		"gpt2": "openai-community/gpt2", "gpt2-xl": "openai-community/gpt2-xl",
		"distilgpt2": "distilbert/distilgpt2", "me/my-gpt2": "me/my-gpt2",
	} {
		if got, err := Repo(model); err != nil || got != want {
			t.Errorf("Repo(%q) = %q, %v", model, got, err)
		}
	}
	if _, err := Repo("llama"); err == nil {
		t.Error("llama accepted")
	}
}
