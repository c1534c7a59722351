package main

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// counter reads the sample of a labelled metric from /metrics; labels are
// `name="value"` pairs that must all appear.
func (s *server) counter(t *testing.T, token, name string, labels ...string) float64 {
	t.Helper()
	code, body := s.call(t, "GET", "/metrics", token, "")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(line, l)
		}
		if all {
			f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// randomModel writes a random-weight checkpoint of GPT-2's 124M shape
// (bf16): the tiny fixture writes a whole stream in milliseconds, too
// fast to watch text grow or to stop it half-way; this one takes
// seconds, like a real model on a CPU.
func randomModel(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to write a random checkpoint: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "random-124M")
	cmd := exec.Command(goCmd, "run", "../../weights/internal/randomgpt2", "-size", "small", "-dtype", "bf16",
		"-tokenizer", "../../testdata/gpt2-tiny", "-out", dir)
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("randomgpt2: %v\n%s", err, out)
	}
	return dir
}

// TestConsoleStreamsAndStops watches the playground's text grow while the
// server streams it, then stops a generation half-way: the page shows it
// stopped, and the server cancels the generation and frees its slot.
func TestConsoleStreamsAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 270 MB checkpoint")
	}
	model := randomModel(t)
	data := filepath.Join(t.TempDir(), "gpt2d.db")
	s := serve(t, gpt2d([]string{"GPT2D_ADMIN_USERNAME=root", "GPT2D_ADMIN_PASSWORD=root-password"},
		"serve", "--model", model, "--addr", "127.0.0.1:0", "--data", data, "--slots", "1"))
	b := startBrowser(t, s.url)
	tb := b.tabs[0]
	root := s.token(t, "root", "root-password")
	tb.do("open console", chromedp.Navigate(s.url+"/"))
	tb.signIn("root", "root-password")

	t.Run("text grows as tokens arrive", func(t *testing.T) {
		defer b.bind(t)()
		tb.generate("Once upon a time", 40)
		var lengths []int
		deadline := time.Now().Add(browserWait)
		for {
			st := eval[struct {
				N      int
				Status string
			}](tb, `({n: document.getElementById('gen-text').textContent.length, status: document.getElementById('gen-status').textContent})`)
			if len(lengths) == 0 || lengths[len(lengths)-1] != st.N {
				lengths = append(lengths, st.N)
			}
			if strings.HasPrefix(st.Status, "done") || st.Status == "error" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream not done after %s: %v", browserWait, lengths)
			}
			time.Sleep(20 * time.Millisecond)
		}
		st := tb.text("#gen-status")
		if st != "done: length" && st != "done: eos" {
			t.Fatalf("status %q, error %q", st, tb.text("#gen-error"))
		}
		// Between nothing and the whole text, several partial texts were
		// on screen.
		if len(lengths) < 5 {
			t.Fatalf("text lengths seen while streaming: %v, want it to grow in steps", lengths)
		}
		tokens := tb.text("#gen-tokens")
		rate, err := strconv.ParseFloat(tb.text("#gen-rate"), 64)
		if n, _ := strconv.Atoi(tokens); n < 1 || n > 40 || (st == "done: length") != (n == 40) || err != nil || rate <= 0 {
			t.Fatalf("tokens %q, tokens/s %q", tokens, tb.text("#gen-rate"))
		}
		t.Logf("%d distinct text lengths on screen; %s tokens at %.1f tokens/s", len(lengths), tokens, rate)
	})

	t.Run("stop cancels the generation and frees the slot", func(t *testing.T) {
		defer b.bind(t)()
		const asked = 500
		tb.generate("The history of the world", asked)
		tb.until("stream started", `document.getElementById('gen-status').textContent === 'streaming' && document.getElementById('gen-text').textContent.length > 0`)
		if active := s.metric(t, root, "gpt2d_active_sequences"); active != 1 {
			t.Fatalf("active sequences while streaming: %v", active)
		}
		tb.click("#gen-stop-button")
		tb.until("stopped", `document.getElementById('gen-status').textContent === 'stopped'`)
		shown, _ := strconv.Atoi(tb.text("#gen-tokens"))
		waitFor(t, func() bool { return s.metric(t, root, "gpt2d_active_sequences") == 0 })
		if c := s.counter(t, root, "gpt2d_generations_total", `endpoint="generate"`, `finish_reason="cancelled"`); c != 1 {
			t.Fatalf("cancelled generations: %v", c)
		}
		if !eval[bool](tb, `!document.getElementById('gen-start').disabled && document.getElementById('gen-stop-button').disabled`) {
			t.Fatal("buttons not reset after Stop")
		}
		t.Logf("stopped after %d of %d tokens", shown, asked)
		// The one slot is free: the next generation runs at once.
		tb.generate("Again", 5)
		tb.until("next generation done", `document.getElementById('gen-status').textContent === 'done: length'`)
	})
	tb.clean()
}
