package child

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// modeEnv makes the test binary play a helper process instead of running
// the tests; helpers maps its values to what the helper does, returning the
// exit status.
const modeEnv = "WEFT_CHILD_TEST_MODE"

var helpers = map[string]func() int{
	"echo":  echo,
	"exit3": func() int { return 3 },
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(modeEnv); mode != "" {
		os.Exit(helpers[mode]())
	}
	goleak.VerifyTestMain(m)
}

// helperCmd runs this test binary as the helper mode.
func helperCmd(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), modeEnv+"="+mode)
	return cmd
}

// echo answers each line on stdin with itself. At EOF it stays: the death
// of whoever held its stdin must not end it, only a signal may.
func echo() int {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Println(sc.Text())
	}
	for {
		time.Sleep(time.Hour) // idling until killed, not waiting for anything
	}
}

// Wait and Done report the exit like cmd.Wait, to any number of callers; a
// command that cannot start is an error and leaves no goroutine behind
// (goleak).
func TestStartWait(t *testing.T) {
	p, err := Start(helperCmd("exit3"))
	if err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Wait: %v, want exit status 3", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done open after Wait returned")
	}
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("second Wait: %v", err)
	}

	if _, err := Start(exec.Command(filepath.Join(t.TempDir(), "missing"))); err == nil {
		t.Fatal("started a missing binary")
	}
}
