package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
	"weft.dev/weft/internal/apiclient"
)

// The network: a ring a-b-c-d-e-a with the chord a-c, every link of cost 1.
// Events are published at a and consumed at d, two hops away by a-c-d or
// a-e-d, so that killing c or e moves them to the other path; the HTTP and
// TCP clients are at a too. Only b, c and e are killed: the sites of the
// publisher, the consumer and the clients stay up, as the clients' own
// machines would.
var (
	siteNames = []string{"a", "b", "c", "d", "e"}
	// links are made by the first site redeeming a token of the second.
	links = [][2]string{{"a", "b"}, {"b", "c"}, {"c", "d"}, {"d", "e"}, {"e", "a"}, {"a", "c"}}
	// httpSites serve address web, tcpSites address echo.
	httpSites = []string{"b", "c", "e"}
	tcpSites  = []string{"c", "e"}
)

const (
	publisherSite = "a"
	consumerSite  = "d"
	clientSite    = "a"

	topicName = "chaos.events"
	queueName = "chaos.jobs"
	httpAddr  = "web"
	tcpAddr   = "echo"
)

// killable are the sites the harness may kill.
func killable() []string {
	var out []string
	for _, n := range siteNames {
		if n != publisherSite && n != consumerSite && n != clientSite {
			out = append(out, n)
		}
	}
	return out
}

// site is one `weft site run` process and its data directory, which
// outlives the process: a restart on it is the same site.
type site struct {
	name, dir string
	args      []string  // after --name and --data
	log       io.Writer // the whole log across restarts
	proc      *benchproc.Proc
}

// mesh is the running network.
type mesh struct {
	bin   string
	cl    *benchproc.Cleanups
	tl    *timeline
	sites map[string]*site
	// status calls the sites' admin APIs, each call bounded so that a
	// stalled site shows up as an error, not a hung watcher.
	status *http.Client
}

// startMesh starts every site under work and links them.
func startMesh(ctx context.Context, cl *benchproc.Cleanups, cfg config, work string, tl *timeline) (*mesh, error) {
	tr := &http.Transport{}
	cl.Add(tr.CloseIdleConnections)
	m := &mesh{bin: cfg.WeftBin, cl: cl, tl: tl, sites: map[string]*site{}, status: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
	if err := os.MkdirAll(filepath.Join(work, "logs"), 0o755); err != nil {
		return nil, err
	}
	for _, n := range siteNames {
		f, err := os.Create(filepath.Join(work, "logs", n+".log"))
		if err != nil {
			return nil, err
		}
		// Registered before the site, so run after it has stopped.
		cl.Add(func() { f.Close() })
		s := &site{name: n, dir: filepath.Join(work, n), log: f, args: []string{"--log-level", cfg.SiteLogLevel}}
		m.sites[n] = s
		if err := m.start(ctx, s); err != nil {
			return nil, err
		}
	}
	for _, l := range links {
		tok := filepath.Join(work, "token-"+l[0]+"-"+l[1]+".yaml")
		if _, err := m.cli(ctx, l[1], "token", "issue", "--file", tok); err != nil {
			return nil, err
		}
		if _, err := m.cli(ctx, l[0], "link", "create", tok); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// start runs s and waits until it is ready.
func (m *mesh) start(ctx context.Context, s *site) error {
	fmt.Fprintf(s.log, "---- harness: start at %s\n", time.Now().Format(time.RFC3339Nano))
	// A watch per process: a killed one may leave half a line behind.
	tee := io.MultiWriter(s.log, &deathWatch{site: s.name, tl: m.tl})
	p, err := benchproc.StartWeftSite(ctx, m.cl, m.bin, s.name, s.dir, tee, s.args...)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// kill SIGKILLs s and returns once it is gone.
func (m *mesh) kill(s *site) {
	s.proc.Kill()
	fmt.Fprintf(s.log, "---- harness: SIGKILL at %s\n", time.Now().Format(time.RFC3339Nano))
}

// cli runs the weft CLI against the named site.
func (m *mesh) cli(ctx context.Context, name string, args ...string) ([]byte, error) {
	return benchproc.WeftCLI(ctx, m.bin, m.sites[name].dir, args...)
}

// admin is a client of the named site's admin API. A restarted site has a
// new admin address, so this is read each time.
func (m *mesh) admin(name string) (*apiclient.Client, error) {
	dir := m.sites[name].dir
	addr, err := os.ReadFile(filepath.Join(dir, "admin.addr"))
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		return nil, err
	}
	return &apiclient.Client{Base: "http://" + strings.TrimSpace(string(addr)), Token: strings.TrimSpace(string(tok)), HTTP: m.status}, nil
}

// eventsURL is the named site's event API.
func (m *mesh) eventsURL(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(m.sites[name].dir, "events.addr"))
	if err != nil {
		return "", err
	}
	return "http://" + strings.TrimSpace(string(b)), nil
}

// view is what a site's status says about the network: the sites it can
// reach (itself excluded) and where each address is served.
type view struct {
	sites    []string
	servedAt map[string][]string
}

func (m *mesh) view(ctx context.Context, name string) (view, error) {
	c, err := m.admin(name)
	if err != nil {
		return view{}, err
	}
	var st struct {
		Sites []struct {
			Name string `json:"name"`
		} `json:"sites"`
		Addresses []struct {
			Address string `json:"address"`
			Sites   []struct {
				Name string `json:"name"`
			} `json:"sites"`
		} `json:"addresses"`
	}
	if err := c.JSON(ctx, "GET", "/v1/status", nil, &st); err != nil {
		return view{}, err
	}
	v := view{servedAt: map[string][]string{}}
	for _, s := range st.Sites {
		if s.Name != name {
			v.sites = append(v.sites, s.Name)
		}
	}
	for _, a := range st.Addresses {
		for _, s := range a.Sites {
			v.servedAt[a.Address] = append(v.servedAt[a.Address], s.Name)
		}
	}
	slices.Sort(v.sites)
	for _, s := range v.servedAt {
		slices.Sort(s)
	}
	return v, nil
}

// mismatch says how v differs from what a site sees when exactly the sites
// in up are running, or returns "" when it does not.
func (v view) mismatch(self string, up []string) string {
	want := func(at []string) []string {
		var out []string
		for _, n := range at {
			if slices.Contains(up, n) {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out
	}
	others := slices.DeleteFunc(slices.Clone(up), func(n string) bool { return n == self })
	if w := want(others); !slices.Equal(v.sites, w) {
		return fmt.Sprintf("reaches %v, want %v", v.sites, w)
	}
	for addr, at := range map[string][]string{httpAddr: httpSites, tcpAddr: tcpSites} {
		if w := want(at); !slices.Equal(v.servedAt[addr], w) {
			return fmt.Sprintf("sees %s served at %v, want %v", addr, v.servedAt[addr], w)
		}
	}
	return ""
}

// configure creates the services and event objects: connectors to the
// harness's backends, listeners at the client's site, the persisted topic
// and queue at the publisher's and push subscriptions to the sink at the
// consumer's. It returns the listeners' addresses.
func (m *mesh) configure(ctx context.Context, b *backends) (httpListen, tcpListen string, err error) {
	for _, n := range httpSites {
		if _, err := m.cli(ctx, n, "connector", "create", httpAddr, "--target", b.http[n], "--protocol", "http"); err != nil {
			return "", "", err
		}
	}
	for _, n := range tcpSites {
		if _, err := m.cli(ctx, n, "connector", "create", tcpAddr, "--target", b.echo[n]); err != nil {
			return "", "", err
		}
	}
	listen := func(args ...string) (string, error) {
		out, err := m.cli(ctx, clientSite, append([]string{"listener", "create"}, append(args, "--port", "0", "-o", "json")...)...)
		if err != nil {
			return "", err
		}
		var v struct{ Listen string }
		if err := json.Unmarshal(out, &v); err != nil || v.Listen == "" {
			return "", fmt.Errorf("listener create %s answered %q (%v)", args[0], out, err)
		}
		return v.Listen, nil
	}
	if httpListen, err = listen(httpAddr, "--protocol", "http", "--retries", "2", "--hedge", "auto"); err != nil {
		return "", "", err
	}
	if tcpListen, err = listen(tcpAddr); err != nil {
		return "", "", err
	}
	if _, err := m.cli(ctx, publisherSite, "topic", "create", topicName, "--delivery", "persisted"); err != nil {
		return "", "", err
	}
	if _, err := m.cli(ctx, publisherSite, "queue", "create", queueName, "--delivery", "persisted"); err != nil {
		return "", "", err
	}
	// The sink never refuses, so retries only matter should a push be cut
	// short; many of them, quickly, so that none is dead-lettered.
	for _, s := range []struct{ name, flag, subject, path string }{
		{"chaos-topic", "--topic", topicName, "/topic"},
		{"chaos-queue", "--queue", queueName, "/queue"},
	} {
		if _, err := m.cli(ctx, consumerSite, "subscription", "create", s.name, s.flag, s.subject, "--sink", b.sinkURL+s.path,
			"--retry", "100", "--backoff", "linear", "--backoff-delay", "100ms"); err != nil {
			return "", "", err
		}
	}
	return httpListen, tcpListen, nil
}
