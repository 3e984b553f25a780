package service

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"weft.dev/weft/internal/resource"
)

// protoServer answers with the HTTP version it was asked in; it speaks
// HTTP/1.1, h2c (prior knowledge) or both.
func protoServer(t *testing.T, h1, h2c bool) string {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.Config.Protocols = &http.Protocols{}
	srv.Config.Protocols.SetHTTP1(h1)
	srv.Config.Protocols.SetUnencryptedHTTP2(h2c)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// protoClient speaks HTTP/1.1, or h2c with prior knowledge.
func protoClient(t *testing.T, h2c bool) *http.Client {
	tr := &http.Transport{Protocols: &http.Protocols{}}
	if h2c {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestHTTPKeepsVersion(t *testing.T) {
	for _, tc := range []struct {
		name          string
		h1, h2c       bool   // what the target speaks
		mode          string // the connector's target protocol
		clientH2, via string // the client's version; what reaches the target
	}{
		{"h2 both ways", true, true, "", "h2", "HTTP/2.0"},
		{"http1 both ways", true, true, "", "http1", "HTTP/1.1"},
		{"h2 client, http1-only target", true, false, "", "h2", "HTTP/1.1"},
		{"http1 client, h2c-only target", false, true, "", "http1", "HTTP/2.0"},
		{"forced http1", true, true, resource.TargetProtocolHTTP1, "h2", "HTTP/1.1"},
		{"forced h2c", true, true, resource.TargetProtocolH2C, "http1", "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, "a", "b")
			w.link("a", "b", 1)
			c := httpConnector("web", "web", protoServer(t, tc.h1, tc.h2c))
			c.Spec.TargetProtocol = tc.mode
			w.connector("b", c)
			url := "http://" + w.listener("a", httpListener("web", ""))
			client := protoClient(t, tc.clientH2 == "h2")
			for i := range 3 { // the probe's answer is remembered
				code, body, err := get(client, url)
				if err != nil || code != 200 || body != tc.via {
					t.Fatalf("request %d: %d %q %v, want %s at the target", i, code, body, err, tc.via)
				}
			}
		})
	}
}

// TestProbeWithoutAnswer checks that a target which takes the probe's
// connection but answers nothing in time is not taken to lack the version:
// requests keep the client's version, no probe is made again until
// probeRetry has passed, and the next probe's answer is remembered.
func TestProbeWithoutAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var answer atomic.Bool // whether the target answers probes yet
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if answer.Load() {
					io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
				}
				io.Copy(io.Discard, c) // until the probe closes
			}()
		}
	}()
	now := time.Unix(1000, 0)
	probes := 0
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		probes++ // choose probes under its lock: no race
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tr := &targetTransport{target: ln.Addr().String(), dial: dial,
		now: func() time.Time { return now }, probeTimeout: 50 * time.Millisecond}

	if h2 := tr.choose(t.Context(), false); h2 {
		t.Fatal("after an unanswered probe: HTTP/2 chosen, want the client's HTTP/1.1")
	}
	if tr.probed.h1.speaks != speaksUnknown {
		t.Fatalf("after an unanswered probe: remembered %v, want unknown", tr.probed.h1.speaks)
	}
	if probes != 1 {
		t.Fatalf("%d probes, want 1", probes)
	}
	answer.Store(true)
	now = now.Add(probeRetry - time.Second)
	tr.choose(t.Context(), false)
	if probes != 1 {
		t.Fatalf("%d probes before probeRetry passed, want still 1", probes)
	}
	now = now.Add(time.Second)
	if h2 := tr.choose(t.Context(), false); h2 || tr.probed.h1.speaks != speaksYes {
		t.Fatalf("after probeRetry: h2 %v, remembered %v; want HTTP/1.1 and yes", h2, tr.probed.h1.speaks)
	}
	if probes != 2 {
		t.Fatalf("%d probes, want 2", probes)
	}
}
