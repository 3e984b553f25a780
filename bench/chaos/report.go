package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// report is the outcome of a run.
type report struct {
	topic, queue          counts
	kills                 int
	settle                string
	deaths                int
	deathNotes, stalls    []string
	pubRetries            map[string]int
	pubLastErr            map[string]string
	httpOK, tcpOK         int
	httpFailed, tcpFailed [nClasses]int
	httpSamples           [nClasses][]string
	tcpSamples            [nClasses][]string
}

func (r *runner) report() *report {
	h := r.tl.history()
	rep := &report{
		topic: r.b.topic.counts(), queue: r.b.queue.counts(),
		kills: len(h.kills), settle: h.settle(),
		deaths: len(h.deaths), deathNotes: h.deathNotes, stalls: h.stalls,
		pubRetries: map[string]int{}, pubLastErr: map[string]string{},
	}
	for k, p := range r.pubs {
		rep.pubRetries[k], rep.pubLastErr[k] = p.retried()
	}
	rep.httpOK, _ = r.http.totals()
	rep.tcpOK, _ = r.tcp.totals()
	rep.httpFailed, rep.httpSamples = r.http.byClass(h)
	rep.tcpFailed, rep.tcpSamples = r.tcp.byClass(h)
	return rep
}

func sum(a [nClasses]int) int {
	n := 0
	for _, x := range a {
		n += x
	}
	return n
}

// published, delivered, lost and duplicates are over the topic and the
// queue together.
func (rep *report) published() int  { return rep.topic.published + rep.queue.published }
func (rep *report) delivered() int  { return rep.topic.delivered + rep.queue.delivered }
func (rep *report) lost() int       { return len(rep.topic.lost) + len(rep.queue.lost) }
func (rep *report) duplicates() int { return rep.topic.duplicates + rep.queue.duplicates }

// ok says whether the run met the goals: no event lost, at most 0.1% of
// HTTP requests failed, no new TCP connection failed once the client's
// site had converged.
func (rep *report) ok() bool {
	hf := sum(rep.httpFailed)
	return rep.lost() == 0 && hf*1000 <= rep.httpOK+hf && rep.tcpFailed[failConverged] == 0
}

// write prints the details, then the summary line last.
func (rep *report) write(w io.Writer) {
	fmt.Fprintf(w, "chaos: %d kills; %s\n", rep.kills, rep.settle)
	if rep.deaths > 0 {
		fmt.Fprintf(w, "chaos: %d link ends torn down for missed heartbeats (no kill does that; a starved machine does), first: %s\n",
			rep.deaths, strings.Join(rep.deathNotes, ", "))
	}
	if len(rep.stalls) > 0 {
		fmt.Fprintf(w, "chaos: the harness itself got no CPU %d times: %s\n", len(rep.stalls), strings.Join(rep.stalls[:min(len(rep.stalls), maxSamples)], ", "))
	}
	for _, x := range []struct {
		name string
		c    counts
	}{{"topic", rep.topic}, {"queue", rep.queue}} {
		fmt.Fprintf(w, "chaos: %s published=%d delivered=%d lost=%d duplicates=%d unacknowledged-but-delivered=%d publish-retries=%d\n",
			x.name, x.c.published, x.c.delivered, len(x.c.lost), x.c.duplicates, x.c.stray, rep.pubRetries[x.name])
		if e := rep.pubLastErr[x.name]; e != "" {
			fmt.Fprintf(w, "chaos: %s last publish error: %s\n", x.name, e)
		}
		if len(x.c.lost) > 0 {
			fmt.Fprintf(w, "chaos: %s lost ids: %s\n", x.name, idRanges(x.c.lost, 40))
		}
	}
	for _, x := range []struct {
		name    string
		failed  [nClasses]int
		samples [nClasses][]string
	}{{"http", rep.httpFailed, rep.httpSamples}, {"tcp", rep.tcpFailed, rep.tcpSamples}} {
		var parts []string
		for c := range nClasses {
			parts = append(parts, fmt.Sprintf("%s=%d", classNames[c], x.failed[c]))
		}
		fmt.Fprintf(w, "chaos: %s failures: %s\n", x.name, strings.Join(parts, ", "))
		for c := range nClasses {
			for _, s := range x.samples[c] {
				fmt.Fprintf(w, "chaos:   %s %s: %s\n", x.name, classNames[c], s)
			}
		}
	}
	if !rep.ok() {
		fmt.Fprintln(w, "chaos: GOAL MISSED (lost=0, http failed <= 0.1%, no new tcp connection failing after convergence)")
	}
	fmt.Fprintf(w, "chaos: events published=%d delivered=%d lost=%d duplicates=%d http ok=%d failed=%d tcp ok=%d failed=%d\n",
		rep.published(), rep.delivered(), rep.lost(), rep.duplicates(),
		rep.httpOK, sum(rep.httpFailed), rep.tcpOK, sum(rep.tcpFailed))
}

// idRanges writes sorted ids of the form prefix-NNNNNNNN as runs of
// consecutive numbers (a lost batch is one run), at most limit runs.
func idRanges(ids []string, limit int) string {
	var runs []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && seqOf(ids[j+1]) == seqOf(ids[j])+1 {
			j++
		}
		if len(runs) == limit {
			runs = append(runs, fmt.Sprintf("... (%d more ids)", len(ids)-i))
			break
		}
		if i == j {
			runs = append(runs, ids[i])
		} else {
			runs = append(runs, fmt.Sprintf("%s..%s", ids[i], ids[j][strings.LastIndexByte(ids[j], '-')+1:]))
		}
		i = j + 1
	}
	return strings.Join(runs, " ")
}

// seqOf is the number of an id prefix-NNNNNNNN, -1 for another.
func seqOf(id string) int {
	n, err := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
	if err != nil {
		return -1
	}
	return n
}
