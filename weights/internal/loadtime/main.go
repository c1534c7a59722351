// Command loadtime measures weights.Load on each checkpoint given (a gpt2d
// weights file or a Hugging Face directory): the time Load takes, then the
// time to read every byte of every tensor once (the page faults a mapped
// file defers to first use), and the resident set after.
//
//	go run ./weights/internal/loadtime models/gpt2.gpt2d models/gpt2
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"gpt2d/weights"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadtime CHECKPOINT...")
		os.Exit(2)
	}
	for _, path := range os.Args[1:] {
		start := time.Now()
		ck, err := weights.Load(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtime:", err)
			os.Exit(1)
		}
		load := time.Since(start)
		start = time.Now()
		var sum byte
		var n int
		for _, t := range ck.Tensors {
			for i := 0; i < len(t.Data); i += 64 {
				sum += t.Data[i]
			}
			n += len(t.Data)
		}
		touch := time.Since(start)
		fmt.Printf("%s: Load %v, first read of %d tensor bytes %v, RSS %s (%d)\n", path, load.Round(100*time.Microsecond), n, touch.Round(100*time.Microsecond), rss(), sum)
		ck.Close()
	}
}

// rss returns the process's current resident set size from /proc.
func rss() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
