package console

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRecentKeepsWarnings(t *testing.T) {
	var out bytes.Buffer
	r := NewRecent(2)
	log := slog.New(r.Tee(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelError}))).With("site", "east")
	log.Info("fine")
	log.WithGroup("link").Warn("slow", "peer", "west")
	log.Error("broken", "err", "boom")
	log.Warn("third")

	got := r.Entries()
	if len(got) != 2 || got[0].Message != "third" || got[1].Message != "broken" {
		t.Fatalf("entries %+v, want the last two, newest first", got)
	}
	if got[1].Attrs["site"] != "east" || got[1].Attrs["err"] != "boom" || got[1].Level != "ERROR" {
		t.Fatalf("entry %+v", got[1])
	}
	r2 := NewRecent(5)
	slog.New(r2.Tee(slog.NewTextHandler(&bytes.Buffer{}, nil))).WithGroup("link").Warn("slow", "peer", "west")
	if e := r2.Entries()[0]; e.Attrs["link.peer"] != "west" {
		t.Fatalf("grouped attrs %v", e.Attrs)
	}
	// The next handler keeps its own level: only the error was written.
	if s := out.String(); strings.Contains(s, "slow") || strings.Contains(s, "fine") || !strings.Contains(s, "broken") {
		t.Fatalf("passed on:\n%s", s)
	}
}
