package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv names the store file a re-executed test binary registers
// users into until it is killed.
const crashChildEnv = "GPT2D_STORE_CRASH_CHILD"

// TestMain lets the test binary double as the crash child.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

// crashChild registers users forever, printing each name only after
// CreateUser returned — the moment the API would answer 200.
func crashChild(path string) {
	db, err := Open(path, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		name := fmt.Sprintf("p%d-%06d", os.Getpid(), i)
		if err := db.CreateUser(&User{Username: name, Role: RoleUser, PasswordHash: []byte("x")}); err != nil {
			fmt.Fprintln(w, "error", err)
			w.Flush()
			os.Exit(1)
		}
		if err := db.AppendAudit(&Event{Action: "user.register", Target: name}); err != nil {
			os.Exit(1)
		}
		fmt.Fprintln(w, "ok", name)
		w.Flush()
	}
}

func TestAcknowledgedUsersSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var acked []string
		sc := bufio.NewScanner(out)
		// Kill at a point that varies by round, mid-stream.
		deadline := time.Now().Add(time.Duration(150+100*round) * time.Millisecond)
		for sc.Scan() {
			line := sc.Text()
			if name, ok := strings.CutPrefix(line, "ok "); ok {
				acked = append(acked, name)
			} else {
				t.Fatalf("child: %s", line)
			}
			if time.Now().After(deadline) && len(acked) > 0 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		for sc.Scan() { // drain what was printed before the kill
			if name, ok := strings.CutPrefix(sc.Text(), "ok "); ok {
				acked = append(acked, name)
			}
		}
		cmd.Wait()

		db, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		for _, name := range acked {
			if _, err := db.UserByUsername(name); err != nil {
				db.Close()
				t.Fatalf("round %d: acknowledged %s missing: %v", round, name, err)
			}
		}
		db.Close()
		t.Logf("round %d: %d acknowledged registrations survived", round, len(acked))
	}
}
