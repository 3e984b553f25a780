package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"weft.dev/weft/internal/child"
	"weft.dev/weft/internal/logbuf"
)

// The tests of this file each reproduce a point of the issue "A new user's
// first hour": each failed before the command line and the APIs were fixed.

// run runs the weft binary with env added to the test's environment (less
// the WEFT_* variables a developer may have set) and returns stdout,
// stderr and the error.
func run(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WEFT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// writeFile writes a file in a temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokenFile has s issue a token through its admin API, the same in every
// version of the command line, and returns the file holding it.
func (s *site) tokenFile() string {
	s.t.Helper()
	tok, err := os.ReadFile(filepath.Join(s.dir, "admin.token"))
	if err != nil {
		s.t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", s.adminURL()+"/v1/tokens", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("POST /v1/tokens: %s (%v)", resp.Status, err)
	}
	b, _ := yaml.Marshal(v)
	return writeFile(s.t, "token.yaml", string(b))
}

// The demo printed `weft --site ... status` although nothing put weft on
// the PATH (`go run ./cmd/weft demo`): its commands must work as printed.
func TestDemoPrintsCommandsThatWork(t *testing.T) {
	// A PATH without weft, as for a user who ran `go run`.
	path := "/usr/local/bin:/usr/bin:/bin"
	cmd := exec.Command(weftBin, "demo")
	cmd.Env = []string{"PATH=" + path, "HOME=" + t.TempDir()}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &logbuf.Buffer{}
	cmd.Stderr = stderr
	proc, err := child.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		for range lines {
		}
		<-proc.Done()
	})
	var printed []string
	timeout := time.After(60 * time.Second)
	for try := false; ; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the demo ended early: %v\n%s", proc.Wait(), stderr.String())
			}
			switch {
			case strings.HasPrefix(l, "Try"):
				try = true
			case strings.HasPrefix(l, "Press Ctrl-C"):
				if len(printed) < 3 {
					t.Fatalf("the demo printed %d commands to try: %q", len(printed), printed)
				}
				for _, c := range printed {
					sh := exec.Command("sh", "-c", c)
					sh.Env = cmd.Env
					out, err := sh.CombinedOutput()
					if err != nil {
						t.Errorf("the demo's `%s` does not work as printed: %v\n%s", c, err, out)
					}
				}
				return
			case try && strings.TrimSpace(l) != "":
				printed = append(printed, strings.TrimSpace(l))
			}
		case <-timeout:
			t.Fatalf("the demo did not come up in 60s:\n%s", stderr.String())
		}
	}
}

// There was no way to learn which weft one runs.
func TestVersion(t *testing.T) {
	out, _, err := run(t, nil, "version", "-o", "json")
	if err != nil {
		t.Fatalf("weft version -o json: %v\n%s", err, out)
	}
	var v struct{ Module, Revision, Go string }
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Module == "" || !strings.HasPrefix(v.Go, "go1.") {
		t.Fatalf("weft version -o json: %q (%v)", out, err)
	}
	if text, _, err := run(t, nil, "version"); err != nil || !strings.Contains(text, v.Go) {
		t.Errorf("weft version: %q, %v", text, err)
	}
	a := startSite(t, "a")
	resp, err := http.Get(a.adminURL() + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var served struct{ Module, Revision, Go string }
	if err := json.NewDecoder(resp.Body).Decode(&served); err != nil || served != v {
		t.Errorf("GET /version: %+v (%v), want %+v", served, err, v)
	}
	if log := a.log.String(); !strings.Contains(log, `msg="weft site starting"`) || !strings.Contains(log, "go="+v.Go) {
		t.Errorf("the site's log does not start with its version:\n%s", log)
	}
}

// With WEFT_CONTROLLER exported, `weft --site east status` asked for a
// controller token.
func TestSiteWinsOverControllerEnvironment(t *testing.T) {
	a := startSite(t, "a")
	env := []string{"WEFT_CONTROLLER=http://127.0.0.1:1", "WEFT_CONTROLLER_TOKEN=x"}
	if out, errOut, err := run(t, env, "--site", a.dir, "status"); err != nil || !strings.Contains(out, "Site a") {
		t.Errorf("--site with WEFT_CONTROLLER set: %v\n%s%s", err, out, errOut)
	}
	// WEFT_SITE names the site as well as --site does.
	if out, errOut, err := run(t, append(env, "WEFT_SITE="+a.dir), "status"); err != nil || !strings.Contains(out, "Site a") {
		t.Errorf("WEFT_SITE with WEFT_CONTROLLER set: %v\n%s%s", err, out, errOut)
	}
	// The controller is still reached on purpose: here one that is down.
	if _, errOut, err := run(t, env, "controller", "status"); err == nil || !strings.Contains(errOut, "does not answer") {
		t.Errorf("controller status with WEFT_CONTROLLER set: %v %s", err, errOut)
	}
}

// recorder is an HTTP sink that keeps each request's body and content type.
type recorder struct {
	url string
	mu  sync.Mutex
	got []recorded
}

type recorded struct{ contentType, id, body string }

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, recorded{req.Header.Get("Content-Type"), req.Header.Get("ce-id"), string(b)})
		r.mu.Unlock()
	}))
	r.url = "http://" + ln.Addr().String() + "/"
	return r
}

// serve serves h on ln until the test ends.
func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// find returns what arrived with the CloudEvents id, if it did.
func (r *recorder) find(id string) (recorded, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.got {
		if g.id == id {
			return g, true
		}
	}
	return recorded{}, false
}

var publishedRE = regexp.MustCompile(`^event (\S+) published to (topic|queue) (\S+)\n$`)

// publish runs `weft publish` at s and returns the event's id and the kind
// the site published it to.
func (s *site) publish(args ...string) (id, kind string) {
	s.t.Helper()
	out := s.weft(append([]string{"publish"}, args...)...)
	m := publishedRE.FindStringSubmatch(out)
	if m == nil {
		s.t.Fatalf("weft publish %v: %q", args, out)
	}
	return m[1], m[2]
}

// `weft publish jobs` to the queue jobs reported success and delivered
// nothing: it went to a topic jobs. A name is a topic or a queue, never
// both, and publish finds which.
func TestPublishToQueueByName(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	b.linkTo(a)
	sink := newRecorder(t)
	a.weft("queue", "create", "jobs")
	b.weft("subscription", "create", "worker", "--queue", "jobs", "--sink", sink.url)
	// At a, the site that has the Queue.
	id, kind := a.publish("jobs", "--data", `{"n":1}`)
	if kind != "queue" {
		t.Errorf("publish jobs at a went to a %s", kind)
	}
	waitFor(t, 10*time.Second, "the queue's consumer at b to get the event", func() bool { _, ok := sink.find(id); return ok })
	// At b, which has no Queue: the consumer's interest names the queue.
	if id, kind = b.publish("jobs", "--data", `{"n":2}`); kind != "queue" {
		t.Errorf("publish jobs at b went to a %s", kind)
	}
	waitFor(t, 10*time.Second, "the event published at b", func() bool { _, ok := sink.find(id); return ok })

	// The name is taken: no topic jobs beside the queue.
	if out, err := a.try("topic", "create", "jobs"); err == nil || !strings.Contains(out, "NameInUse") {
		t.Errorf("topic create jobs beside the queue jobs: %v\n%s", err, out)
	}
	// Insisting on a topic is refused, saying what to use.
	if out, err := a.try("publish", "jobs", "--topic", "--data", "x"); err == nil || !strings.Contains(out, "WrongKind") || !strings.Contains(out, "/v1/queues/jobs") {
		t.Errorf("publish --topic to the queue jobs: %v\n%s", err, out)
	}
}

// `publish --data hello` failed as malformed JSON although help says text is
// allowed: the content type follows the data.
func TestPublishPlainText(t *testing.T) {
	a := startSite(t, "a")
	sink := newRecorder(t)
	a.weft("subscription", "create", "s", "--topic", "notes", "--sink", sink.url)
	id, _ := a.publish("notes", "--data", "hello")
	waitFor(t, 10*time.Second, "the text event at the sink", func() bool { _, ok := sink.find(id); return ok })
	if got, _ := sink.find(id); got.body != "hello" || !strings.HasPrefix(got.contentType, "text/plain") {
		t.Errorf("the sink got %q as %q, want hello as text/plain", got.body, got.contentType)
	}
	id, _ = a.publish("notes", "--data", `{"a":1}`)
	waitFor(t, 10*time.Second, "the JSON event at the sink", func() bool { _, ok := sink.find(id); return ok })
	if got, _ := sink.find(id); got.contentType != "application/json" {
		t.Errorf("JSON data went as %q", got.contentType)
	}
}

var linkUpRE = regexp.MustCompile(`^link (\S+) up \(rtt (\S+)\)\n$`)

// `link create` printed "connecting (rtt )": it waits for the link and its
// first RTT sample, and off a terminal it prints no progress line.
func TestLinkCreateSaysUpWithRTT(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	tok := a.tokenFile()
	out, errOut, err := run(t, nil, "--site", b.dir, "link", "create", tok)
	if err != nil {
		t.Fatalf("link create: %v\n%s%s", err, out, errOut)
	}
	m := linkUpRE.FindStringSubmatch(out)
	if m == nil || m[1] != "a" {
		t.Fatalf("link create printed %q, want `link a up (rtt ...)`", out)
	}
	if d, err := time.ParseDuration(m[2]); err != nil || d <= 0 {
		t.Errorf("link create's rtt %q is not a measured duration", m[2])
	}
	if errOut != "" {
		t.Errorf("off a terminal link create printed progress: %q", errOut)
	}
}

// `apply` with one bad document created the good ones and reported only the
// error: now one line per document, and a non-zero exit.
func TestApplyReportsEveryDocument(t *testing.T) {
	a := startSite(t, "a")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, busyPort, _ := net.SplitHostPort(busy.Addr().String())
	f := writeFile(t, "r.yaml", `apiVersion: weft.dev/v1alpha1
kind: Connector
metadata: {name: good}
spec: {address: good, target: "127.0.0.1:9"}
---
apiVersion: weft.dev/v1alpha1
kind: Listener
metadata: {name: invalid}
spec: {address: invalid, port: 99999}
---
apiVersion: weft.dev/v1alpha1
kind: Listener
metadata: {name: busy}
spec: {address: busy, port: `+busyPort+`}
---
apiVersion: weft.dev/v1alpha1
kind: Topic
metadata: {name: after}
`)
	out, err := a.try("apply", "-f", f)
	if err == nil {
		t.Errorf("apply with failing documents exited 0:\n%s", out)
	}
	for _, want := range []string{
		"connector/good created\n",
		"listener/invalid failed: document 2: invalid resource: spec.port",
		"listener/busy failed: ",
		"topic/after created\n",
		"2 of 4 documents failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}
	out, _ = a.try("apply", "-f", f)
	if !strings.Contains(out, "connector/good unchanged\n") || !strings.Contains(out, "topic/after unchanged\n") {
		t.Errorf("applying again:\n%s", out)
	}
}

// `weft link lst` printed help and exited 0.
func TestMistypedSubcommandFails(t *testing.T) {
	for _, args := range [][]string{{"link", "lst"}, {"lnk"}, {"listener", "creat"}} {
		_, errOut, err := run(t, nil, args...)
		if err == nil || !strings.Contains(errOut, "unknown command") || !strings.Contains(errOut, "Did you mean") {
			t.Errorf("weft %v: %v\n%s", args, err, errOut)
		}
	}
}

// `--uses 0` silently became 1.
func TestTokenUsesZeroRefused(t *testing.T) {
	a := startSite(t, "a")
	if out, err := a.try("token", "issue", "--uses", "0"); err == nil || !strings.Contains(out, "uses") {
		t.Errorf("token issue --uses 0: %v\n%s", err, out)
	}
	if out := a.weft("token", "list", "-o", "name"); out != "" {
		t.Errorf("a token was issued anyway: %q", out)
	}
}

// Linking a site to its own token said "compatible weft versions".
func TestLinkToOwnTokenRefused(t *testing.T) {
	a := startSite(t, "a")
	out, err := a.try("link", "create", a.tokenFile())
	if err == nil || !strings.Contains(out, "issued by this site (a) itself") {
		t.Errorf("link create with the site's own token: %v\n%s", err, out)
	}
}

// An AccessToken in `apply` leaked a Go type name; it is redeemed into a
// link to its issuer, as Skupper's AccessToken resource is.
func TestApplyAccessTokenLinks(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	tok := a.tokenFile()
	out := b.weft("apply", "-f", tok)
	if out != "link/a created\n" {
		t.Errorf("apply of a token: %q", out)
	}
	if st := b.status(); len(st.Links) != 1 || st.Links[0].Status.State != "up" {
		t.Errorf("b's links after applying a's token: %+v", st.Links)
	}
	if out := b.weft("apply", "-f", tok); out != "link/a unchanged\n" {
		t.Errorf("applying the spent token again: %q", out)
	}
}

// Deleting a link at the redeemer left a `down` link at the issuer.
func TestLinkDeleteAtRedeemerReachesIssuer(t *testing.T) {
	a, b := startSite(t, "a"), startSite(t, "b")
	name := b.linkTo(a)
	waitFor(t, 10*time.Second, "a to see the link up", func() bool {
		l := a.status().Links
		return len(l) == 1 && l[0].Status.State == "up"
	})
	if out := b.weft("link", "delete", name); out != "link/"+name+" deleted\n" {
		t.Errorf("link delete printed %q", out)
	}
	waitFor(t, 10*time.Second, "the issuer to forget the link", func() bool { return len(a.status().Links) == 0 })
}

// A listener with no connector anywhere reset its clients with nothing
// logged and nothing in `weft status`.
func TestListenerWithoutConnectorIsReported(t *testing.T) {
	a := startSite(t, "a")
	out, err := a.try("listener", "create", "nowhere", "--port", "0")
	if err != nil || !strings.Contains(out, "warning: no connector for \"nowhere\"") {
		t.Errorf("listener create without a connector: %v\n%s", err, out)
	}
	if st := a.weft("status"); !strings.Contains(st, "WARNING listener nowhere: no connector") {
		t.Errorf("status does not warn:\n%s", st)
	}
	if _, err := greeting(a.status().Listeners[0].Listen); err == nil {
		t.Fatal("a client of the listener got an answer")
	}
	waitFor(t, 10*time.Second, "the site to log the closed client", func() bool {
		return strings.Contains(a.log.String(), "no connector for the address is reachable") && strings.Contains(a.log.String(), "address=nowhere")
	})
	a.weft("connector", "create", "nowhere", "--target", echoServer(t, "here"))
	waitFor(t, 10*time.Second, "the warning to go", func() bool { return !strings.Contains(a.weft("status"), "WARNING") })
}

// `intent apply` without selector flags failed on document 2 after document
// 1 was created: documents go under the ones before them, and a file that
// cannot be placed whole changes nothing.
func TestIntentApplyLocatesDocuments(t *testing.T) {
	c := startController(t, t.TempDir())
	ctl := []string{"WEFT_CONTROLLER=" + c.dir}
	bad := writeFile(t, "bad.yaml", "kind: Project\nmetadata: {name: p1}\n---\nkind: Intent\nmetadata: {name: i}\nspec: {type: intracluster, server: s}\n")
	if out, errOut, err := run(t, ctl, "intent", "apply", "-f", bad); err == nil || !strings.Contains(errOut, "document 2 (Intent i)") || !strings.Contains(errOut, "nothing was applied") {
		t.Errorf("intent apply of an intent with no group before it: %v\n%s%s", err, out, errOut)
	}
	if got := string(c.call("GET", "/v2/projects", "", http.StatusOK)); strings.Contains(got, "p1") {
		t.Errorf("the project was created although the file was refused: %s", got)
	}
	good := writeFile(t, "good.yaml", `kind: Project
metadata: {name: p1}
---
kind: Cluster
metadata: {name: east}
spec: {weft: {admin: "127.0.0.1:1", token: "${SITE_TOKEN}"}}
---
kind: App
metadata: {name: shop}
spec: {version: v1, services: [{name: orders, namespace: shop, port: 8181, clusters: [east]}, {name: web, namespace: shop, port: 8182, clusters: [east]}]}
---
kind: TrafficGroup
metadata: {name: g1}
---
kind: Intent
metadata: {name: web-orders}
spec: {type: intracluster, server: orders, clients: [{service: web}]}
`)
	if _, errOut, err := run(t, ctl, "intent", "apply", "-f", good); err == nil || !strings.Contains(errOut, "${SITE_TOKEN}") {
		t.Errorf("intent apply with an unset variable: %v %s", err, errOut)
	}
	out, errOut, err := run(t, append(ctl, "SITE_TOKEN=t0k"), "intent", "apply", "-f", good)
	if err != nil {
		t.Fatalf("intent apply: %v\n%s%s", err, out, errOut)
	}
	want := "project/p1 created\ncluster/east created\napp/shop created\ntrafficgroup/g1 created\nintent/web-orders created\n"
	if out != want {
		t.Errorf("intent apply printed\n%s\nwant\n%s", out, want)
	}
	// A Cluster's admin may be host:port, as a site's admin.addr holds it.
	var cl struct {
		Spec struct{ Weft struct{ Admin, Token string } }
	}
	json.Unmarshal(c.call("GET", "/v2/projects/p1/clusters/east", "", http.StatusOK), &cl)
	if cl.Spec.Weft.Admin != "http://127.0.0.1:1" || cl.Spec.Weft.Token != "t0k" {
		t.Errorf("cluster east's weft: %+v", cl.Spec.Weft)
	}
	if out, _, err := run(t, append(ctl, "SITE_TOKEN=t0k"), "intent", "apply", "-f", good); err != nil || !strings.Contains(out, "project/p1 configured") {
		t.Errorf("applying again: %v\n%s", err, out)
	}
}

// Completion asks the site for the names of its resources.
func TestCompletionOfSiteNames(t *testing.T) {
	a := startSite(t, "a")
	a.weft("listener", "create", "orders", "--port", "0")
	a.weft("listener", "create", "billing", "--port", "0")
	a.weft("queue", "create", "jobs")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"listener", "delete", ""}, []string{"billing", "orders"}},
		{[]string{"listener", "delete", "or"}, []string{"orders"}},
		{[]string{"listener", "list", "billing", ""}, []string{"orders"}},
		{[]string{"publish", "j"}, []string{"jobs"}},
	} {
		out, errOut, err := run(t, nil, append([]string{"__complete", "--site", a.dir}, tc.args...)...)
		if err != nil {
			t.Fatalf("completing %v: %v %s", tc.args, err, errOut)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(l, ":") {
				got = append(got, l)
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("completing %v: %q, want %q", tc.args, got, tc.want)
		}
	}
}
