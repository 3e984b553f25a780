package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// walk calls f for cmd and every command below it.
func walk(cmd *cobra.Command, f func(*cobra.Command)) {
	f(cmd)
	for _, c := range cmd.Commands() {
		walk(c, f)
	}
}

// The command line reads the same everywhere: every command has examples,
// -o is the output format wherever it exists, and no command but the
// deprecated spellings uses another name for a flag that has one.
func TestCommandTreeIsConsistent(t *testing.T) {
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	walk(root, func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || strings.HasPrefix(c.CommandPath(), "weft completion") {
			return
		}
		if c.Example == "" {
			t.Errorf("%s has no examples", c.CommandPath())
		}
		if !strings.HasSuffix(c.Short, ")") && strings.HasSuffix(c.Short, ".") {
			t.Errorf("%s: its short help ends with a full stop", c.CommandPath())
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			switch {
			case f.Name == "output" && f.Shorthand != "o":
				t.Errorf("%s: --output has no -o", c.CommandPath())
			case f.Shorthand == "o" && f.Name != "output":
				t.Errorf("%s: -o is --%s, not the output format", c.CommandPath(), f.Name)
			case f.Shorthand == "f" && f.Name != "filename" && f.Name != "file":
				t.Errorf("%s: -f is --%s", c.CommandPath(), f.Name)
			case f.Name == "retry" && f.Deprecated == "":
				t.Errorf("%s: --retry is not deprecated in favour of --retries", c.CommandPath())
			}
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: a backquote in a flag's usage becomes its value name", c.CommandPath(), f.Name)
			}
		})
	})
}

// A mistyped subcommand is an error with a suggestion, never help and exit 0.
func TestUnknownSubcommand(t *testing.T) {
	for _, args := range [][]string{{"link", "lst"}, {"lnk"}, {"topic", "craete"}, {"controller", "stauts"}} {
		var out, errOut bytes.Buffer
		root := newRootCmd(&out, &errOut)
		root.SetArgs(args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), "Did you mean this?") {
			t.Errorf("weft %s: %v", strings.Join(args, " "), err)
		}
	}
	// A group without a subcommand shows its help.
	var out bytes.Buffer
	root := newRootCmd(&out, &out)
	root.SetArgs([]string{"link"})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "Available Commands") {
		t.Errorf("weft link: %v\n%s", err, out.String())
	}
}

func TestDataContentType(t *testing.T) {
	for data, want := range map[string]string{
		"":          "",
		"hello":     "text/plain; charset=utf-8",
		`{"id":1}`:  "application/json",
		"42":        "application/json",
		"\xff\xfe":  "application/octet-stream",
		"two words": "text/plain; charset=utf-8",
	} {
		if got := dataContentType([]byte(data)); got != want {
			t.Errorf("%q: %q, want %q", data, got, want)
		}
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("WEFT_TEST_ADMIN", "127.0.0.1:7070")
	got, err := expandEnv([]byte("admin: ${WEFT_TEST_ADMIN}\ncost: $5\n"))
	if err != nil || string(got) != "admin: 127.0.0.1:7070\ncost: $5\n" {
		t.Errorf("expandEnv: %q, %v", got, err)
	}
	if _, err := expandEnv([]byte("token: ${WEFT_TEST_UNSET_1} ${WEFT_TEST_UNSET_2}")); err == nil ||
		!strings.Contains(err.Error(), "${WEFT_TEST_UNSET_1}, ${WEFT_TEST_UNSET_2}") {
		t.Errorf("unset variables: %v", err)
	}
}

// Documents go under the Project, App and TrafficGroup before them; one
// that cannot be placed stops the file before anything is sent.
func TestLocateDocuments(t *testing.T) {
	docs, err := locateDocuments([]byte(`kind: Project
metadata: {name: p}
---
kind: Cluster
metadata: {name: c}
---
kind: App
metadata: {name: a}
spec: {version: v1}
---
kind: TrafficGroup
metadata: {name: g}
---
kind: Intent
metadata: {name: i}
`), groupFlags{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/v2/projects/p",
		"/v2/projects/p/clusters/c",
		"/v2/projects/p/apps/a/v1",
		"/v2/projects/p/apps/a/v1/traffic-groups/g",
		"/v2/projects/p/apps/a/v1/traffic-groups/g/intents/i",
	}
	for i, d := range docs {
		if d.item != want[i] {
			t.Errorf("document %d goes to %s, want %s", d.index, d.item, want[i])
		}
	}
	if _, err := locateDocuments([]byte("kind: Project\nmetadata: {name: p}\n---\nkind: Intent\nmetadata: {name: i}\n"), groupFlags{}); err == nil ||
		!strings.Contains(err.Error(), "document 2") || !strings.Contains(err.Error(), "--app") {
		t.Errorf("an Intent without its App: %v", err)
	}
	// The flags place documents as well.
	if docs, err := locateDocuments([]byte("kind: Intent\nmetadata: {name: i}\n"), groupFlags{"p", "a", "v1", "g"}); err != nil || docs[0].coll != "/v2/projects/p/apps/a/v1/traffic-groups/g/intents" {
		t.Errorf("an Intent placed by flags: %v %v", docs, err)
	}
}

func TestSplitDocuments(t *testing.T) {
	docs, err := splitDocuments([]byte(`# comment only
---
apiVersion: weft.dev/v1alpha1
kind: Topic
metadata: {name: ok}
---
apiVersion: weft.dev/v1alpha1
kind: Listener
metadata: {name: bad}
spec: {address: bad, port: -1}
---
apiVersion: weft.dev/v1alpha1
kind: Nonsense
metadata: {name: what}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 3 {
		t.Fatalf("%d documents, want 3: %+v", len(docs), docs)
	}
	if docs[0].err != nil || docs[0].kind != "Topic" || docs[0].index != 2 {
		t.Errorf("first: %+v", docs[0])
	}
	if docs[1].err == nil || !strings.Contains(docs[1].err.Error(), "spec.port") || docs[1].name != "bad" {
		t.Errorf("second: %+v", docs[1])
	}
	if docs[2].err == nil || strings.Contains(docs[2].err.Error(), "*resource") {
		t.Errorf("third: %+v", docs[2])
	}
}

// An explicit --site always names a site, whatever the environment says.
func TestWantsController(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantCtl bool
	}{
		{"env controller, flag site", map[string]string{"WEFT_CONTROLLER": "http://x"}, []string{"--site", "d"}, false},
		{"env both", map[string]string{"WEFT_CONTROLLER": "http://x", "WEFT_SITE": "d"}, nil, false},
		{"env controller only", map[string]string{"WEFT_CONTROLLER": "http://x"}, nil, true},
		{"flag controller, env site", map[string]string{"WEFT_SITE": "d"}, []string{"--controller", "http://x"}, true},
		{"both flags", nil, []string{"--controller", "http://x", "--site", "d"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WEFT_SITE", "")
			t.Setenv("WEFT_CONTROLLER", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
			status, _, err := root.Find([]string{"status"})
			if err != nil {
				t.Fatal(err)
			}
			if err := status.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			if got := wantsController(status); got != tc.wantCtl {
				t.Errorf("wantsController = %v, want %v", got, tc.wantCtl)
			}
		})
	}
}

// An empty statement file is refused before the site is asked: an empty
// statement once meant "revoke this very site", for good.
func TestRevocationAddRefusesEmptyFile(t *testing.T) {
	for content, refused := range map[string]bool{
		"": true, "\n": true, "site: x\nkind: site\n": true,
		"AAECAwQF\n": false, "statement: AAECAwQF\n": false, // bare, and as create wrote it
	} {
		path := t.TempDir() + "/statement.yaml"
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		root := newRootCmd(&out, &out)
		// No site runs in this directory: a statement found goes on to
		// fail there, after the file was taken.
		root.SetArgs([]string{"--site", t.TempDir(), "revocation", "add", path})
		err := root.Execute()
		if got := err != nil && strings.Contains(err.Error(), "holds no revocation statement"); got != refused || err == nil {
			t.Errorf("revocation add of %q: %v", content, err)
		}
	}
}
