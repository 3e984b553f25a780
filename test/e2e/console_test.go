package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium for the test and returns a tab's
// context. Without Chromium the test skips, except in CI (CI=true), where
// .ci/install-browser-deps.sh must have installed it.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed: CI must run .ci/install-browser-deps.sh")
		}
		t.Skip("chromium is not installed: run .ci/install-browser-deps.sh to run the browser tests")
	}
	// Without these flags Chromium reaches out to Google's services and,
	// on a closed network, waits for them.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser, on the long-lived context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// artifacts is where the browser tests leave their screenshots:
// $WEFT_TEST_ARTIFACTS/TEST-NAME, or a temporary directory.
func artifacts(t *testing.T) string {
	dir := t.TempDir()
	if d := os.Getenv("WEFT_TEST_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// page drives one browser tab with a deadline per step.
type page struct {
	t   *testing.T
	ctx context.Context
	dir string
}

// do runs steps, failing the test with what after d.
func (p *page) do(what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		p.t.Fatalf("%s: %v", what, err)
	}
}

// until polls a JavaScript condition in the page until it holds.
func (p *page) until(what, cond string, d time.Duration) {
	p.t.Helper()
	p.do(what, d+5*time.Second, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(50*time.Millisecond))(ctx, t)
		return err
	}))
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// shot saves a full-page screenshot as NAME.png.
func (p *page) shot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(p.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot %s", path)
}

// login logs in at the console of the site at admin with credential and
// waits for the element then of the page it leads to.
func (p *page) login(admin, credential, then string) {
	p.t.Helper()
	p.do("log in", 20*time.Second,
		chromedp.Navigate(admin+"/login"),
		chromedp.WaitVisible(chromedp.ID("credential")),
		chromedp.SendKeys(chromedp.ID("credential"), credential),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID(then)),
	)
}

func adminToken(t *testing.T, s *site) string {
	b, err := os.ReadFile(filepath.Join(s.dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// httpBackend answers every request with a short text.
func httpBackend(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from west")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// The site console in a real browser, on the network of `weft demo`:
// east - transit - west, with service "hello" at west and its listener at
// east.
func TestConsoleBrowser(t *testing.T) {
	ctx := browser(t)
	east, transit, west := startSite(t, "east"), startSite(t, "transit"), startSite(t, "west")
	east.linkTo(transit)
	transit.linkTo(west)
	west.weft("connector", "create", "hello", "--target", httpBackend(t), "--protocol", "http")
	var lv struct{ Listen string }
	if err := json.Unmarshal([]byte(east.weft("listener", "create", "hello", "--port", "0", "--protocol", "http", "-o", "json")), &lv); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "east to learn where hello is served", func() bool {
		return len(east.status().servedAt("hello")) > 0
	})
	p := &page{t: t, ctx: ctx, dir: artifacts(t)}

	// Without a session the API refuses and the page sends the browser to
	// the login form.
	for _, path := range []string{"/console/api/snapshot", "/console/events"} {
		resp, err := http.Get(east.adminURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s without a cookie: %d, want 401", path, resp.StatusCode)
		}
	}
	p.do("open the console without a session", 20*time.Second,
		chromedp.Navigate(east.adminURL()+"/"),
		chromedp.WaitVisible(chromedp.ID("credential")),
	)
	if loc := eval[string](p, "location.pathname"); loc != "/login" {
		t.Fatalf("without a session the console is at %q, want /login", loc)
	}
	p.shot("01-login")

	p.login(east.adminURL(), "not-the-token", "login-error")
	if msg := eval[string](p, `document.getElementById("login-error").textContent`); !strings.Contains(msg, "Wrong credential") {
		t.Fatalf("wrong credential says %q", msg)
	}
	p.shot("02-wrong-credential")

	p.login(east.adminURL(), adminToken(t, east), "graph")
	p.until("see the three sites and their links", `(() => {
		const sites = [...document.querySelectorAll("#graph g.node")].map(n => n.dataset.site).sort().join(",");
		const up = (a, b) => [...document.querySelectorAll("#graph line.edge")].some(e =>
			e.dataset.state === "up" && [e.dataset.from, e.dataset.to].sort().join("-") === [a, b].sort().join("-"));
		return sites === "east,transit,west" && up("east", "transit") && up("transit", "west");
	})()`, 20*time.Second)
	if n := eval[int](p, `document.querySelectorAll("#graph line.edge").length`); n != 2 {
		t.Fatalf("%d links drawn, want 2", n)
	}
	if c := eval[string](p, `document.cookie`); c != "" {
		t.Fatalf("page script can read cookies %q: the session cookie must be HttpOnly", c)
	}
	rate := `Number((document.querySelector('tr[data-address="hello"] td.rate-req') || {dataset: {}}).dataset.value)`
	p.until("see hello with no traffic yet", `document.querySelector('tr[data-address="hello"] td.rate-req') !== null && `+rate+` === 0`, 20*time.Second)
	p.shot("03-network")

	stop := load(t, "http://"+lv.Listen+"/")
	p.until("see hello's request rate rise", rate+` > 1`, 30*time.Second)
	p.until("see hello served at west, ok", `document.querySelector('tr[data-address="hello"] .chip[data-site="west"]').dataset.state === "ok"`, 10*time.Second)
	p.shot("04-load")
	stop()

	// Events: topic orders's rate rises while it is published to, and a
	// persisted queue with no consumer anywhere keeps what is published
	// to it as its backlog.
	east.weft("queue", "create", "jobs", "--delivery", "persisted")
	p.until("see queue jobs with no backlog", `(document.querySelector('tr[data-queue="jobs"] td.backlog') || {}).textContent === "0" &&
		document.querySelector('tr[data-topic="orders"]') === null`, 20*time.Second)
	sub := east.subscribeSSE(t, "/v1/topics/orders")
	stop = publishLoop(t, east, "/v1/topics/orders")
	waitFor(t, 15*time.Second, "east's subscriber to get orders", func() bool { return sub.count("order") > 0 })
	pub := `Number((document.querySelector('tr[data-topic="orders"] td.rate-pub') || {dataset: {}}).dataset.value)`
	del := `Number((document.querySelector('tr[data-topic="orders"] td.rate-del') || {dataset: {}}).dataset.value)`
	p.until("see orders's publish and delivery rates rise", pub+` > 5 && `+del+` > 5`, 30*time.Second)
	const queued = 25
	if code, body := east.publishBatch("/v1/queues/jobs", batch("job", "/east", 0, queued)); code != http.StatusAccepted {
		t.Fatalf("publish to jobs: %d %s", code, body)
	}
	p.until("see jobs's backlog", fmt.Sprintf(`document.querySelector('tr[data-queue="jobs"] td.backlog').dataset.value === "%d"`, queued), 20*time.Second)
	p.shot("05-events")
	stop()

	// Transit has the link to west: once west dies, transit shows it down.
	p.login(transit.adminURL(), adminToken(t, transit), "graph")
	p.until("see transit's link to west up", `[...document.querySelectorAll("#graph line.edge")].some(e =>
		[e.dataset.from, e.dataset.to].sort().join("-") === "transit-west" && e.dataset.state === "up")`, 20*time.Second)
	west.stop(syscall.SIGKILL)
	p.until("see the link to west go down", `[...document.querySelectorAll("#graph line.edge")].some(e =>
		[e.dataset.from, e.dataset.to].includes("west") && e.dataset.state !== "up") &&
		document.querySelector('#graph g.node[data-site="west"]').dataset.state === "unreachable" &&
		document.querySelector('tr[data-link="west"]').dataset.state !== "up"`, 30*time.Second)
	// A peer that vanished is a warning, so it is among the recent errors.
	p.until("see the lost link among the recent warnings", `[...document.querySelectorAll("#errors li.level-WARN")].some(li =>
		li.textContent.includes("link down") && li.textContent.includes("peer=west"))`, 30*time.Second)
	p.shot("06-west-killed")

	p.do("log out", 20*time.Second, chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("credential")))
	resp, err := http.Get(transit.adminURL() + "/console/api/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("snapshot after logout without a cookie: %d", resp.StatusCode)
	}
}

// publishLoop publishes a batch of 5 events to path at s every 50 ms
// until the returned stop is called: a steady 100 events a second.
func publishLoop(t *testing.T, s *site, path string) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n += 5 {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			s.publishBatch(path, batch("order", "/loop", n, 5))
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
	t.Cleanup(stop)
	return stop
}

// load sends requests to url from a few goroutines until the returned stop
// is called.
func load(t *testing.T, url string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// The controller console in a real browser: a project with a weft site as
// its cluster, one intent, its plan before release and the cluster's sync
// status after.
func TestControllerConsoleBrowser(t *testing.T) {
	ctx := browser(t)
	east := startSite(t, "east")
	c := startController(t, t.TempDir())
	p := &page{t: t, ctx: ctx, dir: artifacts(t)}

	resp, err := http.Get(c.url + "/console/api/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("controller snapshot without a cookie: %d, want 401", resp.StatusCode)
	}

	kb, _ := json.Marshal(map[string]any{"metadata": map[string]any{"name": "east"},
		"spec": map[string]any{"weft": map[string]any{"admin": east.adminURL(), "token": adminToken(t, east)}}})
	const group = "/v2/projects/p1/apps/shop/v1/traffic-groups/g1"
	c.call("POST", "/v2/projects", `{"metadata":{"name":"p1"}}`, http.StatusCreated)
	c.call("POST", "/v2/projects/p1/clusters", string(kb), http.StatusCreated)
	c.call("POST", "/v2/projects/p1/apps", fmt.Sprintf(`{"metadata":{"name":"shop"},"spec":{"version":"v1","services":[
		{"name":"orders","namespace":"shop","port":%d,"protocol":"HTTP","serviceAccount":"orders","clusters":["east"]},
		{"name":"web","namespace":"shop","port":80,"protocol":"HTTP","serviceAccount":"web","clusters":["east"]}]}}`, freePort(t)), http.StatusCreated)
	c.call("POST", "/v2/projects/p1/apps/shop/v1/traffic-groups", `{"metadata":{"name":"g1"}}`, http.StatusCreated)
	c.call("POST", group+"/intents", `{"metadata":{"name":"web-orders"},"spec":{"type":"intracluster","server":"orders","clients":[{"service":"web"}]}}`, http.StatusCreated)

	p.login(c.url, "wrong", "login-error")
	p.login(c.url, c.tok, "main")
	p.until("see the project, its cluster, intent and planned creates", `(() => {
		const g = document.querySelector('[data-group="shop/v1/g1"]');
		return document.querySelector('section[data-project="p1"] tr[data-cluster="east"]') !== null && g !== null &&
			g.querySelector('tr[data-intent="web-orders"]') !== null &&
			g.querySelectorAll('[data-plan-target="east"] li[data-action="create"]').length > 0;
	})()`, 20*time.Second)
	p.shot("01-plan")

	c.call("POST", group+"/apply", "", http.StatusAccepted)
	p.until("see east synced and the plan in sync", `(() => {
		const g = document.querySelector('[data-group="shop/v1/g1"]');
		const row = g && g.querySelector('tr[data-target="east"]');
		return row !== null && row.dataset.state === "applied" &&
			g.querySelectorAll('[data-plan-target="east"] li[data-action]').length === 0;
	})()`, 30*time.Second)
	p.shot("02-applied")
}
