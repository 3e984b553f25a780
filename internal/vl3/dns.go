package vl3

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// dnsTTL is short: an attachment's address can change when it is detached
// and attached again.
const dnsTTL = 5

// netnsEtc is where `ip netns exec` finds a namespace's own /etc files.
var netnsEtc = "/etc/netns"

// startDNS serves <attachment>.<network>.weft names on a's address, port
// 53 (UDP), inside a's namespace, and makes it the namespace's resolver.
func (m *Manager) startDNS(a Attachment) (*dns.Server, error) {
	pc, err := listenIn(a.Netns, net.JoinHostPort(a.IP.String(), "53"))
	if err != nil {
		return nil, fmt.Errorf("DNS server in namespace %s: %w", a.Netns, err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(m.answer)}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		srv.ActivateAndServe()
	}()
	dir := filepath.Join(netnsEtc, a.Netns)
	conf := fmt.Sprintf("# written by weft for vL3 attachment %s\nnameserver %s\nsearch weft\n", a.Name, a.IP)
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644)
	}
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("resolv.conf of namespace %s: %w", a.Netns, err)
	}
	return srv, nil
}

// stopDNS stops srv and removes the namespace's resolv.conf if weft wrote
// it for a.
func stopDNS(srv *dns.Server, a Attachment) {
	srv.Shutdown()
	p := filepath.Join(netnsEtc, a.Netns, "resolv.conf")
	if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "weft for vL3 attachment "+a.Name+"\n") {
		os.Remove(p)
	}
}

// answer resolves A queries for attachments from the routes.
func (m *Manager) answer(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	switch ip, ok := m.routes.Load().Host(name); {
	case !strings.HasSuffix(name, ".weft."):
		resp.Rcode = dns.RcodeRefused
	case !ok:
		resp.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY:
		resp.Answer = append(resp.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: dnsTTL}, A: ip.AsSlice()})
	}
	w.WriteMsg(resp)
}

// listenIn opens a UDP socket in namespace nsName: a socket belongs to the
// namespace of the thread that made it, wherever it is used from.
func listenIn(nsName, addr string) (net.PacketConn, error) {
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	var pc net.PacketConn
	err = inNamespace(ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr)
		return err
	})
	if err != nil && pc != nil {
		pc.Close()
	}
	return pc, err
}
