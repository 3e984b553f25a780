package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/child"
	"weft.dev/weft/internal/logbuf"
)

// The walkthrough of README.md, run as written. Its rules are stated in the
// README itself, above the first block:
//
//   - a block runs if the line before its ```sh fence is walkthroughMarker;
//   - HOME is a fresh temporary directory, so ~/weft is one too;
//   - the working directory holds a copy of examples/, so that
//     examples/... paths work;
//   - every port number (readmePort) in the blocks and in the copy of
//     examples/ becomes a free port, the same number the same port, and at
//     the one standing for readmeServicePort the test serves HTTP;
//   - `weft site run ... &` and `weft controller run ... &` run in the
//     background until the test ends, and the next command waits for them
//     to be ready;
//   - `export` lines carry their variables to the commands after them;
//   - any other command must exit 0.
const (
	walkthroughMarker = "<!-- walkthrough -->"
	readmeServicePort = "8080"
)

// readmePort is a port number as the README writes it: four or five digits
// after ':' (and an optional space) or after --port.
var readmePort = regexp.MustCompile(`(:\s?|--port[ =])(\d{4,5})\b`)

// walkthroughCommands returns the commands of the marked blocks, in order:
// continuation lines joined, comments and blank lines dropped.
func walkthroughCommands(readme string) (blocks int, cmds []string, err error) {
	sc := bufio.NewScanner(strings.NewReader(readme))
	marked, in := false, false
	var cur string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.TrimSpace(line) == walkthroughMarker:
			marked = true
		case !in && marked && strings.HasPrefix(line, "```sh"):
			in, marked = true, false
			blocks++
		case !in:
			marked = false
		case strings.HasPrefix(line, "```"):
			in = false
			if cur != "" {
				return 0, nil, fmt.Errorf("a block ends in a continued line: %q", cur)
			}
		default:
			if c, ok := strings.CutSuffix(line, `\`); ok {
				cur += c
				continue
			}
			cmd := strings.TrimSpace(cur + line)
			cur = ""
			if cmd != "" && !strings.HasPrefix(cmd, "#") {
				cmds = append(cmds, cmd)
			}
		}
	}
	return blocks, cmds, sc.Err()
}

// ports gives each port number of the README a free port of its own.
type ports struct {
	t *testing.T
	m map[string]int
}

func (p *ports) of(number string) int {
	if _, ok := p.m[number]; !ok {
		p.m[number] = freePort(p.t)
	}
	return p.m[number]
}

// substitute replaces every port number of s by its free port.
func (p *ports) substitute(s string) string {
	return readmePort.ReplaceAllStringFunc(s, func(m string) string {
		sub := readmePort.FindStringSubmatch(m)
		return sub[1] + strconv.Itoa(p.of(sub[2]))
	})
}

// longRunning matches the commands that stay in the foreground, run in the
// background by the walkthrough's trailing &.
var longRunning = regexp.MustCompile(`^weft (site|controller) run .*&$`)

func TestREADMEWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, cmds, err := walkthroughCommands(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	// The walkthrough has six blocks; fewer means a marker was lost and
	// part of the README is no longer checked.
	if blocks < 6 || len(cmds) < 20 {
		t.Fatalf("found %d walkthrough blocks with %d commands in README.md: a %q marker was lost", blocks, len(cmds), walkthroughMarker)
	}
	p := &ports{t: t, m: map[string]int{}}
	home, work, bin := t.TempDir(), t.TempDir(), t.TempDir()
	copyExamples(t, "../../examples", filepath.Join(work, "examples"), p)
	if err := os.Symlink(weftBin, filepath.Join(bin, "weft")); err != nil {
		t.Fatal(err)
	}
	greeting := serveWalkthroughService(t, p.of(readmeServicePort))
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, k := range []string{"WEFT_SITE", "WEFT_CONTROLLER", "WEFT_CONTROLLER_TOKEN"} {
		delete(env, k)
	}
	env["HOME"], env["PATH"] = home, bin+string(os.PathListSeparator)+env["PATH"]
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(home, "weft", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b)
			}
		}
	})

	for _, raw := range cmds {
		cmd := p.substitute(raw)
		switch {
		case strings.HasPrefix(cmd, "export "):
			exportTo(t, env, work, cmd)
		case longRunning.MatchString(cmd):
			startBackground(t, env, work, home, cmd)
		default:
			out, err := runShell(env, work, cmd)
			t.Logf("$ %s\n%s", cmd, out)
			if err != nil {
				t.Fatalf("README walkthrough: `%s` (as written: `%s`) failed: %v\n%s", cmd, raw, err, out)
			}
			if strings.HasPrefix(raw, "curl -sf http://127.0.0.1:9090/") && !strings.Contains(out, greeting) {
				t.Errorf("curl through the listener answered %q, not the service's %q", out, greeting)
			}
		}
	}
}

// copyExamples copies the example files to dst with their port numbers
// substituted as the README's are.
func copyExamples(t *testing.T, src, dst string, p *ports) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), []byte(p.substitute(string(b))), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// serveWalkthroughService is the service the README has at port 8080, and
// the sink of its push subscriptions: it answers every request with a
// greeting, which it returns.
func serveWalkthroughService(t *testing.T, port int) string {
	t.Helper()
	const greeting = "hello from the walkthrough's service"
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintln(w, greeting)
	}))
	return greeting
}

func environ(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// runShell runs one command line in sh, as a reader would paste it.
func runShell(env map[string]string, dir, line string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir, cmd.Env = dir, environ(env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// exportTo runs an export line and takes the variables it set into env.
func exportTo(t *testing.T, env map[string]string, dir, line string) {
	t.Helper()
	out, err := runShell(env, dir, line+" && env -0")
	if err != nil {
		t.Fatalf("README walkthrough: `%s` failed: %v\n%s", line, err, out)
	}
	for _, kv := range strings.Split(out, "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
}

// dataDir is the --data directory of a run command, with ~ expanded.
var dataDir = regexp.MustCompile(`--data (\S+)`)

// startBackground starts `weft site run ... &` or `weft controller run ...
// &` through sh (for the redirections), tied to the test's life, and waits
// until it serves.
func startBackground(t *testing.T, env map[string]string, dir, home, line string) {
	t.Helper()
	m := dataDir.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("README walkthrough: %q has no --data", line)
	}
	data := m[1]
	if rest, ok := strings.CutPrefix(data, "~/"); ok {
		data = filepath.Join(home, rest)
	}
	cmd := exec.Command("sh", "-c", "exec "+strings.TrimSuffix(strings.TrimSpace(line), "&"))
	cmd.Dir, cmd.Env = dir, environ(env)
	out := &logbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	proc, err := child.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-proc.Done():
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-proc.Done()
			t.Errorf("`%s` did not stop on SIGTERM", line)
		}
	})
	addrFile, health := "admin.addr", "/readyz"
	if strings.HasPrefix(line, "weft controller") {
		addrFile, health = "api.addr", "/healthz"
	}
	waitFor(t, 30*time.Second, "`"+line+"` to serve", func() bool {
		select {
		case <-proc.Done():
			t.Fatalf("README walkthrough: `%s` exited: %v\n%s", line, proc.Wait(), out.String())
		default:
		}
		b, err := os.ReadFile(filepath.Join(data, addrFile))
		if err != nil {
			return false
		}
		resp, err := http.Get("http://" + strings.TrimSpace(string(b)) + health)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
