package hub

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress reports a download's progress as it is written to: on a
// terminal, a bar redrawn in place at most five times a second; otherwise a
// line each time another 10% is done (every 64 MiB if the size is unknown;
// nothing for files under 1 MiB).
type progress struct {
	w           io.Writer // nil: report nothing
	tty         bool
	name        string
	have, total int64 // bytes on disk before this attempt; total size or -1
	done        int64 // bytes on disk now
	began       time.Time
	drawn       time.Time
	next        int64 // byte count that triggers the next plain line
	onWrite     func()
}

func (c *Client) newProgress(name string, have, total int64) *progress {
	p := &progress{w: c.Progress, tty: c.Terminal, name: name, have: have, total: total, done: have, began: time.Now()}
	p.next = p.step(have)
	return p
}

// step returns the byte count of the plain line after done bytes.
func (p *progress) step(done int64) int64 {
	if p.total < 0 {
		const every = 64 << 20
		return (done/every + 1) * every
	}
	tenth := p.total / 10
	if tenth == 0 {
		return p.total
	}
	return min(p.total, (done/tenth+1)*tenth)
}

// session returns the bytes written in this attempt.
func (p *progress) session() int64 { return p.done - p.have }

func (p *progress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.onWrite != nil {
		p.onWrite()
	}
	switch {
	case p.w == nil:
	case p.tty:
		if now := time.Now(); now.Sub(p.drawn) >= 200*time.Millisecond {
			p.drawn = now
			fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(true))
		}
	case p.done >= p.next && (p.total < 0 || p.total >= 1<<20):
		fmt.Fprintln(p.w, p.line(false))
		p.next = p.step(p.done)
	}
	return len(b), nil
}

// finish ends the report of this attempt, leaving the bar's final state
// on its own line.
func (p *progress) finish() {
	if p.w == nil {
		return
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", p.line(true))
	}
}

// line describes the progress: name, percentage, bytes, rate and time
// left, with a bar when for a terminal.
func (p *progress) line(bar bool) string {
	var b strings.Builder
	elapsed := time.Since(p.began).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.session()) / elapsed
	}
	if bar {
		fmt.Fprintf(&b, "%-22s ", p.name)
	} else {
		fmt.Fprintf(&b, "%s: ", p.name)
	}
	if p.total > 0 {
		frac := float64(p.done) / float64(p.total)
		if bar {
			const width = 30
			n := int(frac * width)
			fmt.Fprintf(&b, "%3d%% [%s%s] ", int(frac*100), strings.Repeat("=", n), strings.Repeat(" ", width-n))
			fmt.Fprintf(&b, "%s / %s", formatBytes(p.done), formatBytes(p.total))
		} else {
			fmt.Fprintf(&b, "%d%% (%s of %s", int(frac*100), formatBytes(p.done), formatBytes(p.total))
		}
	} else {
		if !bar {
			b.WriteString("(")
		}
		b.WriteString(formatBytes(p.done))
	}
	if rate > 0 {
		fmt.Fprintf(&b, ", %s/s", formatBytes(int64(rate)))
		if p.total > 0 && p.done < p.total {
			left := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
			fmt.Fprintf(&b, ", ETA %s", left.Round(time.Second))
		}
	}
	if !bar {
		b.WriteString(")")
	}
	return b.String()
}

// formatBytes formats n with a decimal unit, as the Hub shows sizes.
func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
