package envtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// StartBIND starts BIND's named from Debian's bind9 package, authoritative
// for zone on a free 127.0.0.1 port (UDP and TCP), and returns its address.
// The zone accepts dynamic updates (RFC 2136) and zone transfers signed with
// the TSIG key tsigName, algorithm hmac-sha256, secret tsigSecret (base64).
// The zone starts with only its SOA, its NS and the NS's address.
func StartBIND(t testing.TB, zone, tsigName, tsigSecret string) (addr string) {
	t.Helper()
	named := need(t, "named (Debian package bind9)", "/usr/sbin/named", "named")
	zone, tsigName = dns.Fqdn(zone), dns.Fqdn(tsigName)
	dir := tempDir(t, "bind")
	onFreePorts(t, func() bool {
		port := freePort(t)
		addr = loopback(port)

		writeFile(t, dir, "zone.db", fmt.Sprintf(`$TTL 60
@	IN SOA ns.%[1]s hostmaster.%[1]s 1 3600 600 86400 60
@	IN NS ns.%[1]s
ns	IN A 127.0.0.1
`, zone))
		conf := writeFile(t, dir, "named.conf", fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file none;
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
	allow-query { any; };
};
// No rndc: it would need a key file and port 953.
controls { };
key "%[3]s" {
	algorithm hmac-sha256;
	secret "%[4]s";
};
zone "%[5]s" {
	type primary;
	file "%[1]s/zone.db";
	update-policy { grant %[3]s zonesub ANY; };
	allow-transfer { key %[3]s; };
};
`, dir, port, strings.TrimSuffix(tsigName, "."), tsigSecret, zone))

		// -g: foreground, logging to stderr; -n 1: one worker thread is plenty.
		os.Remove(filepath.Join(dir, "named.log")) // an earlier try's
		p := start(t, "named", filepath.Join(dir, "named.log"), nil, named, "-g", "-4", "-n", "1", "-c", conf)
		t.Cleanup(p.stop)
		return p.waitReady(t, 30*time.Second, func(ctx context.Context) error {
			m := new(dns.Msg)
			m.SetQuestion(zone, dns.TypeSOA)
			r, _, err := new(dns.Client).ExchangeContext(ctx, m, addr)
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				return fmt.Errorf("SOA query: %s", dns.RcodeToString[r.Rcode])
			}
			return nil
		})
	})
	return addr
}
