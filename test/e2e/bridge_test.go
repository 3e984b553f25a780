package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/child"
	"weft.dev/weft/internal/logbuf"
)

// testBroker is a real broker process that a bridge test starts, with a
// client of its own protocol for the test's side of the bridge.
type testBroker interface {
	// url is the broker URL a Bridge names.
	url() string
	// publish sends CloudEvents in the protocol's binary mode, one message
	// each, and returns once the broker acknowledged them all.
	publish(t *testing.T, subject string, ids []string)
	// publishMalformed sends one message that claims to be a CloudEvent
	// (specversion set) but lacks its required attributes.
	publishMalformed(t *testing.T, subject string)
	// received is every CloudEvent id the broker delivered on subject to
	// the test's consumer, duplicates included; the consumer is created
	// by the first call, before anything is sent there.
	received(t *testing.T, subject string) []string
	// restart stops the broker (as a crash would, where its persistence
	// allows) and starts it again on the same port and data.
	restart(t *testing.T)
}

// brokerProc is a broker process that a test starts, stops and starts
// again on the same address and data.
type brokerProc struct {
	name string
	args []string
	env  []string // nil: the test's
	addr string   // where it listens once ready
	boot time.Duration
	cmd  *exec.Cmd
	done <-chan struct{}
	log  *logbuf.Buffer
}

func (p *brokerProc) start(t *testing.T) {
	t.Helper()
	if p.log == nil {
		p.log = &logbuf.Buffer{}
	}
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	c, err := child.Start(p.cmd)
	if err != nil {
		t.Fatal(err)
	}
	p.done = c.Done()
	waitFor(t, p.boot, p.name+" to listen", func() bool { return listening(p.addr) })
}

// stop ends the process with sig and waits for it.
func (p *brokerProc) stop(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(sig)
	<-p.done
}

// needBinary fails the test with how to install a broker that is missing:
// CI installs them (.ci/install-bridge-deps.sh), so nothing is skipped.
func needBinary(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: %s", name, install)
	}
	return p
}

func ids(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(from+i)
	}
	return out
}

// distinct counts the distinct ids of want in got, and the copies beyond
// the first.
func distinct(got []string, prefix string) (n, dups int) {
	seen := map[string]bool{}
	for _, id := range got {
		if len(id) < len(prefix) || id[:len(prefix)] != prefix {
			continue
		}
		if seen[id] {
			dups++
		}
		seen[id] = true
	}
	return len(seen), dups
}

// missing lists the ranges of ids prefix+0 ... prefix+bridgeEvents-1 not
// in got.
func missing(got []string, prefix string) string {
	seen := map[string]bool{}
	for _, id := range got {
		seen[id] = true
	}
	var out []string
	for i := 0; i < bridgeEvents; i++ {
		if seen[prefix+strconv.Itoa(i)] {
			continue
		}
		j := i
		for j+1 < bridgeEvents && !seen[prefix+strconv.Itoa(j+1)] {
			j++
		}
		out = append(out, fmt.Sprintf("%d-%d", i, j))
		i = j
	}
	return strings.Join(out, ",")
}

// listening reports whether something accepts connections at addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// bridgeEvents is how many events each direction of a bridge test carries.
const bridgeEvents = 10000

// testBridge is the two-site test every broker kind passes; the bridge
// takes inFrom (inPub is a subject it covers) and sends to outTo. The broker is
// at site A's side, with a bridge at A; B is linked to A.
//   - In: bridgeEvents CloudEvents published to the broker reach a push
//     subscription at B through the persisted topic in.t, each exactly once.
//   - Out: bridgeEvents events published at B to the persisted topic out.t
//     reach the broker's consumer through A's bridge, each at least once.
//   - Midway the broker is restarted, and later A is SIGKILLed and restarted,
//     while both directions are busy; a malformed message in between is
//     skipped with a metric, and the rest still flows.
func testBridge(t *testing.T, br testBroker, inFrom, inPub, outTo string) {
	a, b := startSite(t, "a"), startSite(t, "b")
	b.linkTo(a)
	a.weft("topic", "create", "in.t", "--delivery", "persisted")
	b.weft("topic", "create", "out.t", "--delivery", "persisted")
	sk := newSink(t, func(string, int) int { return 0 })
	b.weft("subscription", "create", "s", "--topic", "in.t", "--sink", sk.url)
	br.received(t, outTo) // the consumer exists before anything is sent
	a.weft("bridge", "create", "br", "--broker", br.url(), "--in", inFrom+"=in.t", "--out", "out.t="+outTo)
	waitFor(t, 15*time.Second, "the bridge to connect", func() bool { return a.bridgeState("br") == "connected" })

	// Interest has to travel both ways before the run: probes until one
	// arrives each way.
	n := 0
	waitFor(t, 20*time.Second, "probes through the bridge both ways", func() bool {
		n++
		br.publish(t, inPub, []string{fmt.Sprint("probe-in-", n)})
		b.publishBatch("/v1/topics/out.t", []ce{{ID: fmt.Sprint("probe-out-", n), Source: "/probe", Type: "probe", Data: json.RawMessage(`{}`)}})
		in, _ := distinct(sk.got(), "probe-in-")
		out, _ := distinct(br.received(t, outTo), "probe-out-")
		return in > 0 && out > 0
	})

	const chunks = 10
	per := bridgeEvents / chunks
	var wg sync.WaitGroup
	outErr := make(chan string, 1)
	// Out: B publishes in batches the whole time; the faults happen
	// between the in-chunks below, so both directions are busy then.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < bridgeEvents; i += 250 {
			for {
				code, body := b.publishBatch("/v1/topics/out.t", batch("ev", "/e2e/out", i, 250))
				if code == 202 {
					break
				}
				if code != 503 {
					outErr <- fmt.Sprintf("publish at b: %d %s", code, body)
					return
				}
				time.Sleep(50 * time.Millisecond) // Retry-After, shortened
			}
		}
	}()
	for c := 0; c < chunks; c++ {
		br.publish(t, inPub, ids("in-", c*per, per))
		switch c {
		case 3:
			br.restart(t)
		case 6:
			a.stop(syscall.SIGKILL)
			a.start()
		case 8:
			br.publishMalformed(t, inPub)
		}
	}
	wg.Wait()
	select {
	case e := <-outErr:
		t.Fatal(e)
	default:
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		in, _ := distinct(sk.got(), "in-")
		out, _ := distinct(br.received(t, outTo), "")
		if in == bridgeEvents && out >= bridgeEvents {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %d events in at B (missing %s) and %d out at the broker, want %d each; bridge status at A:\n%s",
				in, missing(sk.got(), "in-"), out, bridgeEvents, a.weft("bridge", "list", "-o", "yaml"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	in, inDups := distinct(sk.got(), "in-")
	got := br.received(t, outTo)
	out, outDups := distinct(numeric(got), "")
	t.Logf("in: %d distinct, %d duplicates; out: %d distinct, %d duplicates (at least once: the broker's consumer dedups by id)", in, inDups, out, outDups)
	if in != bridgeEvents || inDups != 0 {
		t.Errorf("in: %d distinct events and %d duplicates at B, want %d and none: weft dedups by source and id", in, inDups, bridgeEvents)
	}
	if out != bridgeEvents {
		t.Errorf("out: %d distinct events at the broker, want %d", out, bridgeEvents)
	}
	// The malformed message, sent after A's restart, was skipped and
	// counted there, and what came after it went through (above).
	if got := a.metric("weft_bridge_malformed_total", ""); got != 1 {
		t.Errorf("weft_bridge_malformed_total at A is %v, want 1", got)
	}
}

// bridgeState is the state of the bridge name at s.
func (s *site) bridgeState(name string) string {
	s.t.Helper()
	var l struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct{ State string }
		}
	}
	out, err := s.try("bridge", "list", "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &l) != nil {
		return ""
	}
	for _, b := range l.Items {
		if b.Metadata.Name == name {
			return b.Status.State
		}
	}
	return ""
}
