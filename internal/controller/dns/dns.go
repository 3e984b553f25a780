// Package dns publishes records in a DNS zone with RFC 2136 dynamic updates
// signed with TSIG, from external-dns DNSEndpoint objects.
//
// Like external-dns' TXT registry, every record set it writes has a TXT
// ownership record beside it, so it only ever changes or removes record sets
// it created, for the owner and resource that created them. The ownership
// record of NAME/TYPE lives at "weft-<type>.NAME" (not at NAME, where a
// CNAME allows no other record) and reads
//
//	heritage=weft,weft/owner=<owner>,weft/resource=<namespace>/<name>
//
// The zone's current records are read by a TSIG-signed zone transfer (AXFR).
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

var (
	// ErrNotOwned is returned when a desired record set exists in the zone
	// but was not created by this owner and resource: it is left alone.
	ErrNotOwned = errors.New("dns: record set exists and is not owned by this resource")
	// ErrInvalidEndpoint is returned for an endpoint that cannot be published.
	ErrInvalidEndpoint = errors.New("dns: invalid endpoint")
)

// Config names a zone and the key allowed to update it.
type Config struct {
	Server    string // host:port of the primary
	Zone      string
	KeyName   string
	Secret    string        // base64
	Algorithm string        // TSIG algorithm, e.g. "hmac-sha256" (the default)
	Owner     string        // distinguishes writers sharing a zone; default "weft"
	Timeout   time.Duration // per exchange; default 10s
}

// Endpoint is one record set: the DNSEndpoint spec.endpoints[] element.
type Endpoint struct {
	DNSName    string
	RecordType string // A, AAAA, CNAME or TXT
	Targets    []string
	TTL        uint32
}

// Resource names the DNSEndpoint object that owns record sets.
type Resource struct{ Namespace, Name string }

func (r Resource) String() string { return r.Namespace + "/" + r.Name }

// Client updates one zone. It is safe for concurrent use, but concurrent
// Apply calls for one Resource race like any two writers of a zone.
type Client struct {
	cfg    Config
	zone   string // fqdn, lower case
	key    string // fqdn
	alg    string // fqdn
	client *dns.Client
}

// New validates cfg and returns a Client. It does not contact the server.
func New(cfg Config) (*Client, error) {
	if cfg.Server == "" || cfg.Zone == "" || cfg.KeyName == "" || cfg.Secret == "" {
		return nil, errors.New("dns: server, zone, key name and secret are required")
	}
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		return nil, fmt.Errorf("dns: server %q: %w", cfg.Server, err)
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = "hmac-sha256"
	}
	alg := dns.Fqdn(strings.ToLower(cfg.Algorithm))
	switch alg {
	case dns.HmacSHA256, dns.HmacSHA384, dns.HmacSHA512, dns.HmacSHA224, dns.HmacSHA1:
	default:
		return nil, fmt.Errorf("dns: unsupported TSIG algorithm %q", cfg.Algorithm)
	}
	if cfg.Owner == "" {
		cfg.Owner = "weft"
	}
	if strings.ContainsAny(cfg.Owner, ",=\"\\ ") {
		return nil, fmt.Errorf("dns: owner %q may not contain , = \" \\ or space", cfg.Owner)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	key := dns.CanonicalName(cfg.KeyName)
	c := &Client{cfg: cfg, zone: dns.CanonicalName(cfg.Zone), key: key, alg: alg}
	c.client = &dns.Client{Net: "tcp", Timeout: cfg.Timeout, TsigSecret: map[string]string{key: cfg.Secret}}
	return c, nil
}

// rrKey identifies a record set.
type rrKey struct {
	name  string // canonical
	rtype uint16
}

// zoneState is what a transfer tells: the record sets and who owns them.
type zoneState struct {
	sets   map[rrKey][]dns.RR
	owners map[rrKey]Ownership // by the owned set's key
}

func (c *Client) transfer(ctx context.Context) (*zoneState, error) {
	m := new(dns.Msg)
	m.SetAxfr(c.zone)
	m.SetTsig(c.key, c.alg, 300, time.Now().Unix())
	tr := &dns.Transfer{DialTimeout: c.cfg.Timeout, ReadTimeout: c.cfg.Timeout, WriteTimeout: c.cfg.Timeout,
		TsigSecret: map[string]string{c.key: c.cfg.Secret}}
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < tr.ReadTimeout {
			tr.DialTimeout, tr.ReadTimeout, tr.WriteTimeout = d, d, d
		}
	}
	ch, err := tr.In(m, c.cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("dns: zone transfer of %s: %w", c.zone, err)
	}
	z := &zoneState{sets: map[rrKey][]dns.RR{}, owners: map[rrKey]Ownership{}}
	var errs []error
	for env := range ch { // drained to the end so that the transfer's goroutine exits
		if env.Error != nil {
			errs = append(errs, env.Error)
			continue
		}
		for _, rr := range env.RR {
			h := rr.Header()
			k := rrKey{dns.CanonicalName(h.Name), h.Rrtype}
			z.sets[k] = append(z.sets[k], rr)
			if txt, ok := rr.(*dns.TXT); ok {
				if owned, ok := ownedKey(k.name); ok {
					if o, err := ParseOwnership(strings.Join(txt.Txt, "")); err == nil {
						z.owners[owned] = o
					}
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dns: zone transfer of %s: %w", c.zone, err)
	}
	return z, nil
}

// ownerName is where the ownership record of a record set lives.
func ownerName(k rrKey) string {
	return "weft-" + strings.ToLower(dns.TypeToString[k.rtype]) + "." + k.name
}

// ownedKey inverts ownerName.
func ownedKey(name string) (rrKey, bool) {
	label, rest, ok := strings.Cut(name, ".")
	typ, found := strings.CutPrefix(label, "weft-")
	if !ok || !found {
		return rrKey{}, false
	}
	t, known := dns.StringToType[strings.ToUpper(typ)]
	if !known || rest == "" {
		return rrKey{}, false
	}
	return rrKey{rest, t}, true
}

func (c *Client) mine(o Ownership, res Resource) bool {
	return o.Owner == c.cfg.Owner && o.Resource == res
}

// Apply makes the zone hold exactly eps for res: it writes the desired
// record sets with their ownership records and removes record sets res owned
// that are no longer desired, all in one update message, so the zone never
// shows a half-applied state. Nothing is sent if the zone already matches.
func (c *Client) Apply(ctx context.Context, res Resource, eps []Endpoint) error {
	if err := validResource(res); err != nil {
		return err
	}
	desired := map[rrKey][]dns.RR{}
	for _, ep := range eps {
		k, rrs, err := c.records(ep)
		if err != nil {
			return err
		}
		if _, dup := desired[k]; dup {
			return fmt.Errorf("%w: %s %s listed twice", ErrInvalidEndpoint, ep.DNSName, ep.RecordType)
		}
		desired[k] = rrs
	}
	z, err := c.transfer(ctx)
	if err != nil {
		return err
	}
	own := Ownership{Owner: c.cfg.Owner, Resource: res}
	u := new(dns.Msg)
	u.SetUpdate(c.zone)
	for k, rrs := range desired {
		o, owned := z.owners[k]
		if _, exists := z.sets[k]; exists && (!owned || !c.mine(o, res)) {
			return fmt.Errorf("%w: %s %s (owner: %s)", ErrNotOwned, k.name, dns.TypeToString[k.rtype], o)
		}
		if owned && c.mine(o, res) && sameRRs(z.sets[k], rrs) {
			continue
		}
		u.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: k.name, Rrtype: k.rtype, Class: dns.ClassINET}}})
		u.Insert(rrs)
		u.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: ownerName(k), Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
		u.Insert([]dns.RR{c.ownershipRR(k, own, rrs[0].Header().Ttl)})
	}
	for k, o := range z.owners {
		if _, want := desired[k]; !want && c.mine(o, res) {
			c.remove(u, k)
		}
	}
	return c.send(ctx, u)
}

// Delete removes every record set res owns, with their ownership records.
func (c *Client) Delete(ctx context.Context, res Resource) error {
	z, err := c.transfer(ctx)
	if err != nil {
		return err
	}
	u := new(dns.Msg)
	u.SetUpdate(c.zone)
	for k, o := range z.owners {
		if c.mine(o, res) {
			c.remove(u, k)
		}
	}
	return c.send(ctx, u)
}

// Owned lists the resources that own record sets in the zone for this
// Client's owner.
func (c *Client) Owned(ctx context.Context) ([]Resource, error) {
	z, err := c.transfer(ctx)
	if err != nil {
		return nil, err
	}
	var out []Resource
	for _, o := range z.owners {
		if o.Owner == c.cfg.Owner && !slices.Contains(out, o.Resource) {
			out = append(out, o.Resource)
		}
	}
	slices.SortFunc(out, func(a, b Resource) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

func (c *Client) remove(u *dns.Msg, k rrKey) {
	u.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: k.name, Rrtype: k.rtype, Class: dns.ClassINET}}})
	u.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: ownerName(k), Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
}

func (c *Client) send(ctx context.Context, u *dns.Msg) error {
	if len(u.Ns) == 0 {
		return nil // nothing to change
	}
	u.SetTsig(c.key, c.alg, 300, time.Now().Unix())
	r, _, err := c.client.ExchangeContext(ctx, u, c.cfg.Server)
	if err != nil {
		return fmt.Errorf("dns: update of %s: %w", c.zone, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("dns: update of %s refused: %s", c.zone, dns.RcodeToString[r.Rcode])
	}
	return nil
}

func (c *Client) ownershipRR(k rrKey, o Ownership, ttl uint32) dns.RR {
	return &dns.TXT{Hdr: dns.RR_Header{Name: ownerName(k), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: []string{o.String()}}
}

// records validates ep and returns its record set.
func (c *Client) records(ep Endpoint) (rrKey, []dns.RR, error) {
	bad := func(format string, args ...any) (rrKey, []dns.RR, error) {
		return rrKey{}, nil, fmt.Errorf("%w: %s %s: %s", ErrInvalidEndpoint, ep.DNSName, ep.RecordType, fmt.Sprintf(format, args...))
	}
	name := dns.CanonicalName(ep.DNSName)
	if _, ok := dns.IsDomainName(name); !ok || ep.DNSName == "" {
		return bad("not a domain name")
	}
	if !dns.IsSubDomain(c.zone, name) {
		return bad("outside zone %s", c.zone)
	}
	if _, isOwner := ownedKey(name); isOwner {
		return bad("names starting with weft-<type> are reserved for ownership records")
	}
	if len(ep.Targets) == 0 {
		return bad("no targets")
	}
	ttl := ep.TTL
	if ttl == 0 {
		ttl = 300
	}
	t, ok := map[string]uint16{"A": dns.TypeA, "AAAA": dns.TypeAAAA, "CNAME": dns.TypeCNAME, "TXT": dns.TypeTXT}[ep.RecordType]
	if !ok {
		return bad("record type must be A, AAAA, CNAME or TXT")
	}
	if t == dns.TypeCNAME && len(ep.Targets) != 1 {
		return bad("a CNAME has exactly one target")
	}
	h := dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	var rrs []dns.RR
	for _, target := range ep.Targets {
		switch t {
		case dns.TypeA:
			ip := net.ParseIP(target)
			if ip == nil || ip.To4() == nil {
				return bad("target %q is not an IPv4 address", target)
			}
			rrs = append(rrs, &dns.A{Hdr: h, A: ip.To4()})
		case dns.TypeAAAA:
			ip := net.ParseIP(target)
			if ip == nil || ip.To4() != nil {
				return bad("target %q is not an IPv6 address", target)
			}
			rrs = append(rrs, &dns.AAAA{Hdr: h, AAAA: ip})
		case dns.TypeCNAME:
			if _, ok := dns.IsDomainName(target); !ok {
				return bad("target %q is not a domain name", target)
			}
			rrs = append(rrs, &dns.CNAME{Hdr: h, Target: dns.Fqdn(target)})
		case dns.TypeTXT:
			rrs = append(rrs, &dns.TXT{Hdr: h, Txt: splitTXT(target)})
		}
	}
	return rrKey{name, t}, rrs, nil
}

// splitTXT splits s into the 255-byte strings a TXT record is made of.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// sameRRs reports whether two record sets hold the same data and TTLs.
func sameRRs(a, b []dns.RR) bool {
	canon := func(rrs []dns.RR) []string {
		out := make([]string, len(rrs))
		for i, rr := range rrs {
			rr = dns.Copy(rr)
			rr.Header().Name = dns.CanonicalName(rr.Header().Name)
			out[i] = strings.ToLower(rr.String())
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(canon(a), canon(b))
}

func validResource(r Resource) error {
	if r.Name == "" || strings.ContainsAny(r.Namespace+r.Name, ",=/\"\\ ") {
		return fmt.Errorf("%w: resource %q: name required, and no , = / \" \\ or space", ErrInvalidEndpoint, r.String())
	}
	return nil
}
