package link

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// The heartbeat loop gives a silence its grace when the socket holds
// unread bytes: inputQueued must see them through TLS and BufferedConn,
// and stop seeing them once they are read.
func TestInputQueued(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SIOCINQ is Linux's")
	}
	for _, tr := range streamTransports[1:] {
		t.Run(tr.name, func(t *testing.T) {
			a, b := tr.pair(t)
			defer a.Close()
			defer b.Close()
			sock := socketOf(b)
			if sock == nil {
				t.Fatal("no socket found under the connection")
			}
			if inputQueued(sock) {
				t.Fatal("input queued before anything was sent")
			}
			go a.Write([]byte("ping"))
			eventually(t, 10*time.Second, "the bytes to reach b's socket", func() bool { return inputQueued(sock) })
			if _, err := io.ReadFull(b, make([]byte, 4)); err != nil {
				t.Fatal(err)
			}
			if inputQueued(sock) {
				t.Fatal("input still queued after it was read")
			}
		})
	}
	if a, _ := net.Pipe(); socketOf(a) != nil {
		t.Fatal("a pipe has no socket")
	}
}
