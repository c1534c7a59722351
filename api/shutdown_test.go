package api

import (
	"bufio"
	"context"
	"encoding/json"
	"testing"
	"time"

	"gpt2d/auth"
	"gpt2d/gpt2"
)

func TestShutdownDeadlineCutsCleanly(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) { c.GenerateTimeout, c.MaxUserSequences = time.Minute, -1 })
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	ts.srv.SetGenerator(newGated(1, 20*time.Millisecond, 0)) // one slot, a stream that never ends

	resp := ts.openStream("/generate", tok, map[string]any{"prompt": "endless", "stream": true}, nil)
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if _, err := rd.ReadString('\n'); err != nil { // the stream holds the slot
		t.Fatal(err)
	}
	queued := make(chan response, 1)
	go func() {
		queued <- ts.postJSON("/generate", tok, map[string]any{"prompt": "waiting", "max_new_tokens": 5})
	}()
	waitUntil(t, func() bool {
		ts.srv.gens.mu.Lock()
		defer ts.srv.gens.mu.Unlock()
		return ts.srv.gens.n == 2
	})

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		shut <- ts.srv.Shutdown(ctx)
	}()

	// The queued request gets a 503 it can retry, not a closed socket.
	r := <-queued
	wantDetail(t, r, 503, "Server is shutting down")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	// The stream ends with an error event, after the tokens it delivered.
	events := readEvents(t, rd)
	if len(events) == 0 || events[len(events)-1].name != "error" {
		t.Fatalf("cut stream ended with %+v", events[max(len(events)-1, 0):])
	}
	var last map[string]any
	json.Unmarshal([]byte(events[len(events)-1].data), &last)
	if last["status"] != float64(503) || last["detail"] != "Server is shutting down" {
		t.Fatalf("error event %v", last)
	}
	if err := <-shut; err == nil {
		t.Fatal("Shutdown reported no deadline")
	}
	// What the cut requests spent is in the store once Shutdown returns:
	// both prompts (counted once prepared), and one token per delta event
	// of the stream (the first was read above).
	deltas := 1
	for _, prompt := range []string{"endless", "waiting"} {
		p, err := engine.Prepare(gpt2.Request{Prompt: prompt})
		if err != nil {
			t.Fatal(err)
		}
		deltas += len(p.IDs)
	}
	for _, e := range events {
		if e.name == "" && e.data != "" {
			deltas++
		}
	}
	if n, _ := ts.db.DayTokens(1, ts.clock.Now()); n != int64(deltas) {
		t.Fatalf("stored tokens %d, want the %d prompt and streamed ones", n, deltas)
	}
}
