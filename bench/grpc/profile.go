package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"weft.dev/weft/bench/internal/benchproc"
)

// profiler fetches pprof profiles from weft sites built with -tags pprof
// (cmd/weft/pprof.go), which serve them on the address in WEFT_PPROF.
type profiler struct {
	dir   string            // where profiles go; empty: no profiling
	addrs map[string]string // site name -> pprof address
}

func newProfiler(dir string) (*profiler, error) {
	p := &profiler{dir: dir, addrs: map[string]string{}}
	if dir == "" {
		return p, nil
	}
	return p, os.MkdirAll(dir, 0o755)
}

// env is the environment of site name: a pprof address when profiling.
func (p *profiler) env(name string) []string {
	if p.dir == "" {
		return nil
	}
	port, err := benchproc.FreePort()
	if err != nil {
		return nil
	}
	p.addrs[name] = fmt.Sprintf("127.0.0.1:%d", port)
	return []string{"WEFT_PPROF=" + p.addrs[name]}
}

// round runs the load of path in round r of rounds: profiled (during)
// when it is weft's last.
func (p *profiler) round(prefix, path string, r, rounds int, d time.Duration, load func() error) error {
	if path == "weft" && r == rounds-1 {
		return p.during(prefix, d, load)
	}
	return load()
}

// during runs load while every site records a CPU profile of d (load
// must take longer), then saves each site's allocation profile, as
// DIR/<prefix>-<site>.{cpu,allocs}.pprof.
func (p *profiler) during(prefix string, d time.Duration, load func() error) error {
	if p.dir == "" {
		return load()
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(p.addrs))
	for name, addr := range p.addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Into the load, so that connections are warm.
			time.Sleep(time.Second)
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()))
			errs <- save(url, filepath.Join(p.dir, prefix+"-"+name+".cpu.pprof"))
		}()
	}
	err := load()
	wg.Wait()
	close(errs)
	for e := range errs {
		if e != nil && err == nil {
			err = e
		}
	}
	for name, addr := range p.addrs {
		if e := save("http://"+addr+"/debug/pprof/allocs", filepath.Join(p.dir, prefix+"-"+name+".allocs.pprof")); e != nil && err == nil {
			err = e
		}
	}
	return err
}

func save(url, file string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile (is weft built with -tags pprof?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
