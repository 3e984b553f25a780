package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"weft.dev/weft/internal/apitype"
	"weft.dev/weft/internal/child"
	"weft.dev/weft/internal/logbuf"
	"weft.dev/weft/internal/vl3"
)

// The vL3 tests run only inside network namespaces they create, with
// addresses of 100.64.0.0/10; nothing is sent anywhere else.

var nsSeq atomic.Int32

// needVL3 skips a test that cannot make namespaces and TUN devices here.
func needVL3(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("vL3 tests make network namespaces and TUN devices: run as root")
	}
	for _, tool := range []string{"ip", "ping", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: run .ci/install-vl3-deps.sh", tool)
		}
	}
}

// netns makes a network namespace with its loopback up, named uniquely for
// this process, and deletes it when the test ends.
func netns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("weft-t%d-%d", os.Getpid(), nsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", name).Run()
		os.RemoveAll("/etc/netns/" + name) // a resolv.conf a killed site left
	})
	inNS(t, name, "ip", "link", "set", "lo", "up")
	return name
}

// inNS runs a command in namespace ns and returns its output, failing the
// test if it fails.
func inNS(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := tryNS(ns, args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return out
}

func tryNS(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// attach attaches ns to network at s and returns its address.
func attach(t *testing.T, s *site, network, ns string, extra ...string) netip.Addr {
	t.Helper()
	s.weft(append([]string{"network", "attach", network, "--netns", ns}, extra...)...)
	for _, n := range networks(t, s) {
		for _, a := range n.Attachments {
			if n.Name == network && a.Netns == ns {
				return a.IP
			}
		}
	}
	t.Fatalf("%s: no attachment of %s in %s after attach", s.name, network, ns)
	return netip.Addr{}
}

func networks(t *testing.T, s *site) []vl3.Network {
	t.Helper()
	var l apitype.List[vl3.Network]
	if err := json.Unmarshal([]byte(s.weft("network", "list", "-o", "json")), &l); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// waitPing waits until ns reaches dst (routes spread by flooding), then
// checks that five pings in a row all come back.
func waitPing(t *testing.T, ns string, dst netip.Addr) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("ping from %s to %s", ns, dst), func() bool {
		_, err := tryNS(ns, "ping", "-c", "1", "-W", "1", dst.String())
		return err == nil
	})
	out := inNS(t, ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", dst.String())
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping %s from %s lost packets:\n%s", dst, ns, out)
	}
}

// iperf runs an iperf3 server in srvNS on addr and a client in cliNS with
// extra flags, and returns the client's JSON report.
func iperf(t *testing.T, srvNS, cliNS string, addr netip.Addr, extra ...string) map[string]any {
	t.Helper()
	log := &logbuf.Buffer{}
	srv := exec.Command("ip", "netns", "exec", srvNS, "iperf3", "-s", "-1", "-B", addr.String())
	srv.Stdout, srv.Stderr = log, log
	p, err := child.Start(srv)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		<-p.Done()
	}()
	// iperf3 3.12 exits 0 with -J when the server is not up yet: the
	// report's error says so.
	var rep map[string]any
	waitFor(t, 10*time.Second, "iperf3 server in "+srvNS, func() bool {
		out, err := tryNS(cliNS, append([]string{"iperf3", "-c", addr.String(), "-t", "2", "-J"}, extra...)...)
		rep = nil
		return err == nil && json.Unmarshal([]byte(out), &rep) == nil && rep["error"] == nil
	})
	return rep
}

func field(m map[string]any, path ...string) float64 {
	var v any = m
	for _, p := range path {
		mm, _ := v.(map[string]any)
		v = mm[p]
	}
	f, _ := v.(float64)
	return f
}

// TestVL3LineOfThree: namespaces attached at the two ends of a line of
// three sites reach each other across the transit site with ICMP, TCP and
// UDP; a restarted site keeps its prefix and attachments.
func TestVL3LineOfThree(t *testing.T) {
	needVL3(t)
	a, b, c := startSite(t, "a"), startSite(t, "b"), startSite(t, "c")
	b.linkTo(a)
	c.linkTo(b)
	a.weft("network", "create", "blue", "--cidr", "100.100.0.0/16")
	waitFor(t, 15*time.Second, "c learns network blue", func() bool {
		return len(c.status().servedAt("vl3/blue")) > 0
	})
	nsA, nsC := netns(t), netns(t)
	ipA := attach(t, a, "blue", nsA, "--dns")
	ipC := attach(t, c, "blue", nsC, "--dns", "--name", "web")
	if !netip.MustParsePrefix("100.100.0.0/16").Contains(ipA) || ipA == ipC {
		t.Fatalf("addresses %s and %s", ipA, ipC)
	}
	var pathOK bool
	for _, s := range a.status().Sites {
		pathOK = pathOK || s.Name == "c" && len(s.Path) == 2
	}
	if !pathOK {
		t.Fatalf("a's path to c is not through b: %+v", a.status().Sites)
	}
	waitPing(t, nsA, ipC)
	waitPing(t, nsC, ipA)

	// DNS: the name of c's attachment resolves in a's namespace.
	waitFor(t, 15*time.Second, "web.blue.weft resolving in "+nsA, func() bool {
		out, err := tryNS(nsA, "getent", "hosts", "web.blue.weft")
		return err == nil && strings.HasPrefix(out, ipC.String()+" ")
	})
	if out, err := tryNS(nsA, "getent", "hosts", "nobody.blue.weft"); err == nil {
		t.Fatalf("an unknown name resolves: %s", out)
	}

	tcp := iperf(t, nsC, nsA, ipC)
	if bps := field(tcp, "end", "sum_received", "bits_per_second"); bps <= 0 {
		t.Fatalf("iperf3 TCP received nothing: %v", tcp["end"])
	} else {
		t.Logf("TCP across the transit site: %.0f Mbit/s", bps/1e6)
	}
	// Datagrams below the MTU: iperf3's default 32 KiB ones would test
	// the namespaces' fragment reassembly.
	udp := iperf(t, nsC, nsA, ipC, "-u", "-b", "2M", "-l", "1200")
	if got, lost := field(udp, "end", "sum_received", "packets"), field(udp, "end", "sum_received", "lost_percent"); got == 0 || lost > 50 {
		t.Fatalf("iperf3 UDP: %v packets received, %v%% lost: %v", got, lost, udp)
	}

	before := networks(t, c)
	c.stop(syscall.SIGTERM)
	c.start()
	after := networks(t, c)
	if len(after) != 1 || after[0].Prefix != before[0].Prefix || len(after[0].Attachments) != 1 || after[0].Attachments[0].IP != ipC {
		t.Fatalf("after a restart c has %+v, before %+v", after, before)
	}
	waitPing(t, nsA, ipC)
	// A new attachment never gets an address handed out before.
	nsC2 := netns(t)
	if ip := attach(t, c, "blue", nsC2); ip == ipC || !before[0].Prefix.Contains(ip) {
		t.Fatalf("second attachment at c got %s (first %s, prefix %s)", ip, ipC, before[0].Prefix)
	}
	waitPing(t, nsC2, ipA)
}

// rxPackets is how many packets the device of network in ns received.
func rxPackets(t *testing.T, ns, network string) int {
	t.Helper()
	out := inNS(t, ns, "cat", "/sys/class/net/vl3-"+network+"/statistics/rx_packets")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestVL3Isolation: two networks with the same CIDR stay apart even where
// their addresses are the same; a namespace on two networks reaches a peer
// on each.
func TestVL3Isolation(t *testing.T) {
	needVL3(t)
	a, b := startSite(t, "a"), startSite(t, "b")
	b.linkTo(a)
	a.weft("network", "create", "blue", "--cidr", "100.100.0.0/16")
	a.weft("network", "create", "green", "--cidr", "100.100.0.0/16")
	// red, and both's device on it, are resources.
	res := filepath.Join(t.TempDir(), "red.yaml")
	if err := os.WriteFile(res, []byte("apiVersion: weft.dev/v1alpha1\nkind: Network\nmetadata: {name: red}\nspec: {cidr: 100.101.0.0/16}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.weft("apply", "-f", res)
	waitFor(t, 15*time.Second, "b learns the networks", func() bool {
		st := b.status()
		return len(st.servedAt("vl3/blue")) > 0 && len(st.servedAt("vl3/green")) > 0 && len(st.servedAt("vl3/red")) > 0
	})
	blueB, greenB, redB := netns(t), netns(t), netns(t)
	ipBlueB, ipGreenB, ipRedB := attach(t, b, "blue", blueB), attach(t, b, "green", greenB), attach(t, b, "red", redB)
	// Each site's prefix comes from its ID, so both networks give b's
	// first attachment the same address.
	if ipBlueB != ipGreenB {
		t.Fatalf("blue %s and green %s: the test wants the same address on both", ipBlueB, ipGreenB)
	}
	greenA, both := netns(t), netns(t)
	attach(t, a, "green", greenA)
	attach(t, a, "blue", both)
	if err := os.WriteFile(res, []byte("apiVersion: weft.dev/v1alpha1\nkind: NetworkAttachment\nmetadata: {name: both}\nspec: {network: red, netns: "+both+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.weft("apply", "-f", res)
	if out := a.weft("apply", "-f", res); !strings.Contains(out, "unchanged") {
		t.Fatalf("applied again: %s", out)
	}

	waitPing(t, both, ipBlueB)
	waitPing(t, both, ipRedB)
	// The same address from green reaches green's namespace only.
	blueBefore, greenBefore := rxPackets(t, blueB, "blue"), rxPackets(t, greenB, "green")
	waitPing(t, greenA, ipGreenB)
	if got := rxPackets(t, blueB, "blue"); got != blueBefore {
		t.Fatalf("blue's namespace at b got %d packets sent on green", got-blueBefore)
	}
	if got := rxPackets(t, greenB, "green"); got < greenBefore+5 {
		t.Fatalf("green's namespace at b got %d packets, want at least 5", got-greenBefore)
	}
}

// TestVL3AcrossOrganisations: a network is an address like any other for
// the policy between organisations. Y's site does not see X's network until
// X exports it and Y imports it; packets flow both ways once each side
// exports and imports it.
func TestVL3AcrossOrganisations(t *testing.T) {
	needVL3(t)
	x, y := startSite(t, "x"), startSite(t, "y")
	y.linkTo(x)
	xKey, xID := org(t, x, "xorg")
	yKey, yID := org(t, y, "yorg")
	x.join(xKey, xID)
	y.join(yKey, yID)
	x.weft("network", "create", "blue", "--cidr", "100.100.0.0/16")
	nsX, nsY := netns(t), netns(t)
	ipX := attach(t, x, "blue", nsX)
	waitFor(t, 15*time.Second, "y to know x", func() bool { return y.status().hasSite("x") })
	if out, err := y.try("network", "attach", "blue", "--netns", nsY); err == nil {
		t.Fatalf("y attached to X's network before X exported it: %s", out)
	}

	x.weft("policy", "export", "vl3/blue", "--to", yID, "--name", "blue")
	y.weft("policy", "import", "vl3/blue", "--from", xID, "--name", "blue")
	waitFor(t, 15*time.Second, "y to learn network blue", func() bool {
		_, err := y.try("network", "attach", "blue", "--netns", nsY)
		return err == nil
	})
	ipY := networks(t, y)[0].Attachments[0].IP
	// X does not import Y's part of blue yet: its replies have no route.
	if out, err := tryNS(nsY, "ping", "-c", "2", "-W", "1", ipX.String()); err == nil {
		t.Fatalf("ping across organisations before both sides agreed:\n%s", out)
	}

	y.weft("policy", "export", "vl3/blue", "--to", xID, "--name", "blue")
	x.weft("policy", "import", "vl3/blue", "--from", yID, "--name", "blue")
	waitPing(t, nsY, ipX)
	waitPing(t, nsX, ipY)
}
