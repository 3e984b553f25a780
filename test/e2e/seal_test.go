package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSealedTransit: on the line a-b-c, a client at a streams a unique
// marker to an echo service at c for several seconds while the test scans
// the memory of the sites' processes. The ingress a holds the plaintext
// (the positive control: the scan works); the transit b, which only
// splices the sealed stream between its two links, never does.
func TestSealedTransit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("reading another process's memory needs root")
	}
	a, b, _, listen := echoLine(t)

	var id [16]byte
	rand.Read(id[:])
	marker := []byte("weft-secret-" + hex.EncodeToString(id[:]))
	conn, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || line != "echo-at-c\n" {
		t.Fatalf("greeting %q, %v", line, err)
	}
	chunk := bytes.Repeat(append(bytes.Clone(marker), '\n'), 64<<10/(len(marker)+1))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, echoed int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer conn.(*net.TCPConn).CloseWrite()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := conn.Write(chunk)
			sent += int64(n)
			if err != nil {
				t.Error("send:", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		n, err := io.Copy(io.Discard, r)
		echoed = n
		if err != nil {
			t.Error("receive:", err)
		}
	}()

	scans, foundInA, foundInB := 0, 0, 0
	for start := time.Now(); time.Since(start) < 5*time.Second || foundInA == 0; scans++ {
		if time.Since(start) > 30*time.Second {
			break
		}
		if foundInB = memCount(t, b.cmd.Process.Pid, marker); foundInB > 0 {
			break
		}
		if memCount(t, a.cmd.Process.Pid, marker) > 0 {
			foundInA++
		}
	}
	close(stop)
	wg.Wait()
	if foundInB > 0 {
		t.Fatalf("scan %d: the transit site b holds the plaintext marker (%d times)", scans, foundInB)
	}
	if echoed != sent || sent == 0 {
		t.Fatalf("sent %d bytes, %d came back", sent, echoed)
	}
	if foundInA == 0 {
		t.Fatalf("the marker was never found in the ingress a in %d scans: the scan does not work", scans)
	}
	t.Logf("%d scans over %d MB streamed: marker in a in %d, in b in none", scans, sent>>20, foundInA)
}

// memCount counts the occurrences of marker in the readable memory of
// process pid, reading /proc/PID/mem over the regions /proc/PID/maps lists.
func memCount(t *testing.T, pid int, marker []byte) int {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	const step = 1 << 20
	buf := make([]byte, step+len(marker))
	count, regions := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(maps)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[1][0] != 'r' || strings.HasSuffix(line, "[vvar]") || strings.HasSuffix(line, "[vsyscall]") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("maps line %q", line)
		}
		regions++
		// Chunks overlap by the marker's length less one, so that no
		// occurrence is split.
		for off := start; off < end; off += step {
			n := min(uint64(len(buf)), end-off)
			m, _ := mem.ReadAt(buf[:n], int64(off)) // a region may vanish meanwhile
			count += bytes.Count(buf[:m], marker)
			if m > 0 && uint64(m) == n && n == uint64(len(buf)) {
				count -= bytes.Count(buf[step:m], marker) // counted again in the next chunk
			}
		}
	}
	if regions == 0 {
		t.Fatalf("no readable memory in process %d", pid)
	}
	return count
}
