package vl3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"weft.dev/weft/internal/siteid"
)

// Stream is a packet stream delivered to this site: a link stream, sealed
// end to end (service.Stream has these methods).
type Stream interface {
	net.Conn
	Confirm() error
}

// Config is what a Manager needs of its site.
type Config struct {
	Self siteid.ID
	// Dir is the site's data directory, where the state file lives.
	Dir string
	// Open opens a packet stream of network to site dst, along the
	// table's path, sealed end to end.
	Open func(ctx context.Context, network string, dst siteid.ID) (net.Conn, error)
	// Announce asks the site to originate its record anew (Advertised
	// changed); it must not block.
	Announce func()
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

// Drop reasons, the label of the drop counter.
const (
	dropMalformed    = "malformed"     // not a well-formed IPv4 packet
	dropSpoofed      = "spoofed"       // source not the attachment's (out) or not the sending site's (in)
	dropNoRoute      = "no-route"      // no site owns the destination
	dropNoAttachment = "no-attachment" // the destination is in this site's prefix, but not attached
	dropUnreachable  = "unreachable"   // the stream to the owning site could not be opened or broke
	dropQueueFull    = "queue-full"    // the stream to the owning site is not keeping up
)

// Manager runs a site's networks: their state, the TUN devices of the
// attachments, and the packet streams to other sites.
//
// mu guards nets, devs and senders; it is never held across I/O. The data
// path reads routes and devices without it.
type Manager struct {
	cfg     Config
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	dropped *prometheus.CounterVec
	// sent, received and local count the packets carried (the data
	// path's counters, looked up once).
	sent, received, local prometheus.Counter

	routes atomic.Pointer[Routes]
	// devices maps network, then address, to the device of a local attachment.
	devices atomic.Pointer[map[string]map[netip.Addr]*device]

	mu      sync.Mutex
	nets    []Network
	devs    map[devKey]*device
	senders map[senderKey]*sender
}

type devKey struct{ network, netns string }

type senderKey struct {
	network string
	dst     siteid.ID
}

// NewManager loads the site's networks; Start brings their attachments up.
func NewManager(cfg Config) (*Manager, error) {
	nets, err := loadState(cfg.Dir)
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, nets: nets, devs: map[devKey]*device{}, senders: map[senderKey]*sender{},
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_vl3_dropped_packets_total",
			Help: "vL3 packets this site dropped, by reason (malformed, spoofed, no-route, no-attachment, unreachable, queue-full)."}, []string{"reason"}),
	}
	packets := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_vl3_packets_total",
		Help: "vL3 packets carried: out (from a local attachment to another site), in (from another site to a local attachment), local (between two local attachments)."}, []string{"direction"})
	m.sent, m.received, m.local = packets.WithLabelValues("out"), packets.WithLabelValues("in"), packets.WithLabelValues("local")
	cfg.Registry.MustRegister(m.dropped, packets)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.routes.Store(BuildRoutes(nil, nil))
	m.devices.Store(&map[string]map[netip.Addr]*device{})
	return m, nil
}

// Start brings up the devices of the attachments the state file lists. An
// attachment whose namespace is gone is logged and kept: its address stays
// reserved until it is detached.
func (m *Manager) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nets {
		for _, a := range n.Attachments {
			if err := m.upLocked(&n, a); err != nil {
				m.cfg.Logger.Error("vL3 attachment not restored: recreate its namespace and attach again, or detach it", "network", n.Name, "netns", a.Netns, "err", err)
			}
		}
	}
	m.publishLocked()
}

// Close removes every device and ends every stream.
func (m *Manager) Close() {
	m.cancel()
	m.mu.Lock()
	for _, d := range m.devs {
		d.close()
	}
	for _, s := range m.senders {
		s.close()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// Advertised are the connectors that announce this site's networks and
// prefixes.
func (m *Manager) Advertised() []Announcement {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Announcement, 0, len(m.nets))
	for _, n := range m.nets {
		out = append(out, Announcement{Site: m.cfg.Self, Network: n.Name, CIDR: n.CIDR, Prefix: n.Prefix})
	}
	return out
}

// AdvertisedHosts are the names of this site's attachments with DNS.
func (m *Manager) AdvertisedHosts() []Host {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Host
	for _, n := range m.nets {
		for _, a := range n.Attachments {
			if a.DNS {
				out = append(out, Host{Network: n.Name, Name: a.Name, IP: a.IP})
			}
		}
	}
	return out
}

// TableChanged gives the manager the networks and names every reachable
// site announces. It returns the conflicts among them, for the site to log.
func (m *Manager) TableChanged(anns []Announcement, hosts []Host) []string {
	r := BuildRoutes(anns, hosts)
	m.routes.Store(r)
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.senders {
		if _, owns := r.Prefix(k.network, k.dst); !owns {
			s.close()
			delete(m.senders, k)
		}
	}
	return r.Conflicts
}

// List is a copy of the site's networks.
func (m *Manager) List() []Network {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.nets)
	for i := range out {
		out[i].Attachments = slices.Clone(out[i].Attachments)
	}
	return out
}

// ErrNotFound is returned for a network or attachment the site does not have.
var ErrNotFound = errors.New("vl3: not found")

// ErrConflict is returned for a network that exists with another CIDR.
var ErrConflict = errors.New("vl3: conflict")

// Create defines a network at this site (and so network-wide). Creating it
// again with the same CIDR changes its MTU only.
func (m *Manager) Create(n Network) error {
	if n.MTU == 0 {
		n.MTU = DefaultMTU
	}
	n.Prefix, n.Attachments = netip.Prefix{}, nil
	if err := n.validate(); err != nil {
		return err
	}
	if cidr, ok := m.routes.Load().CIDR(n.Name); ok && cidr != n.CIDR {
		return fmt.Errorf("%w: network %s is %s at other sites; delete it there or pick another name", ErrConflict, n.Name, cidr)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.indexLocked(n.Name); i >= 0 {
		if m.nets[i].CIDR != n.CIDR {
			return fmt.Errorf("%w: network %s is %s here; delete it first", ErrConflict, n.Name, m.nets[i].CIDR)
		}
		m.nets[i].MTU = n.MTU
		return m.saveLocked()
	}
	m.nets = append(m.nets, n)
	if err := m.saveLocked(); err != nil {
		m.nets = m.nets[:len(m.nets)-1]
		return err
	}
	m.cfg.Announce()
	return nil
}

// Delete detaches every local attachment of network and forgets it here
// (other sites that define it keep it).
func (m *Manager) Delete(network string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.indexLocked(network)
	if i < 0 {
		return fmt.Errorf("%w: no network %s at this site", ErrNotFound, network)
	}
	for _, a := range m.nets[i].Attachments {
		m.downLocked(network, a.Netns)
	}
	m.nets = slices.Delete(m.nets, i, i+1)
	m.publishLocked()
	m.cfg.Announce()
	return m.saveLocked()
}

// Attach creates a's device in its namespace, with a.IP or the next free
// address of this site's prefix of network, and returns the attachment as
// made. A network only other sites define is adopted with their CIDR.
func (m *Manager) Attach(network string, a Attachment, mtu int) (Attachment, error) {
	if a.Name == "" {
		a.Name = a.Netns
	}
	if err := CheckName("attachment", a.Name); err != nil {
		return a, err
	}
	if a.Netns == "" || !namespaceExists(a.Netns) {
		return a, fmt.Errorf("%w: network namespace %q does not exist: create it with `ip netns add NAME`", ErrInvalid, a.Netns)
	}
	r := m.routes.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	// n is changed as a copy and stored only once the device is up and
	// the state saved, so a failure leaves the site as it was.
	var n Network
	i := m.indexLocked(network)
	if i >= 0 {
		n = m.nets[i]
		n.Attachments = slices.Clone(n.Attachments)
	} else {
		cidr, ok := r.CIDR(network)
		if !ok {
			return a, fmt.Errorf("%w: no network %s here or at any reachable site: create it with `weft network create %s --cidr CIDR`", ErrNotFound, network, network)
		}
		n = Network{Name: network, CIDR: cidr, MTU: DefaultMTU}
	}
	if mtu != 0 {
		n.MTU = mtu
	}
	if n.attachment(a.Netns) >= 0 {
		return a, fmt.Errorf("%w: namespace %s is attached to %s already", ErrConflict, a.Netns, network)
	}
	if slices.ContainsFunc(n.Attachments, func(o Attachment) bool { return o.Name == a.Name }) {
		return a, fmt.Errorf("%w: an attachment of %s is named %s already; pick another --name", ErrConflict, network, a.Name)
	}
	claimed := !n.Prefix.IsValid()
	if claimed {
		p, err := ClaimPrefix(n.CIDR, m.cfg.Self, r.Taken(network, m.cfg.Self))
		if err != nil {
			return a, err
		}
		n.Prefix = p
	}
	pool := n.pool()
	ip, err := pool.Allocate(a.IP)
	if err != nil {
		return a, err
	}
	a.IP = ip
	if err := m.upLocked(&n, a); err != nil {
		return a, err
	}
	n.Attachments = append(n.Attachments, a)
	nets := slices.Clone(m.nets)
	if i >= 0 {
		nets[i] = n
	} else {
		nets = append(nets, n)
	}
	if err := saveState(m.cfg.Dir, nets); err != nil {
		m.downLocked(network, a.Netns)
		return a, err
	}
	m.nets = nets
	m.publishLocked()
	if claimed || a.DNS {
		m.cfg.Announce()
	}
	return a, nil
}

// Detach removes the device of network in namespace netnsName and frees its
// address. The site keeps its prefix.
func (m *Manager) Detach(network, netnsName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.indexLocked(network)
	if i < 0 {
		return fmt.Errorf("%w: no network %s at this site", ErrNotFound, network)
	}
	n := &m.nets[i]
	j := n.attachment(netnsName)
	if j < 0 {
		return fmt.Errorf("%w: namespace %s is not attached to %s", ErrNotFound, netnsName, network)
	}
	m.downLocked(network, netnsName)
	if n.Attachments[j].DNS {
		m.cfg.Announce()
	}
	n.Attachments = slices.Delete(n.Attachments, j, j+1)
	m.publishLocked()
	return m.saveLocked()
}

func (m *Manager) indexLocked(network string) int {
	return slices.IndexFunc(m.nets, func(n Network) bool { return n.Name == network })
}

func (m *Manager) saveLocked() error { return saveState(m.cfg.Dir, m.nets) }

// upLocked creates a's device and starts reading it.
func (m *Manager) upLocked(n *Network, a Attachment) error {
	f, err := openTUN(a.Netns, deviceName(n.Name), a.IP, n.CIDR, n.MTU)
	if err != nil {
		return err
	}
	d := &device{f: f, network: n.Name, att: a}
	if a.DNS {
		if d.dns, err = m.startDNS(a); err != nil {
			f.Close()
			return err
		}
	}
	m.devs[devKey{n.Name, a.Netns}] = d
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.readDevice(d)
	}()
	return nil
}

func (m *Manager) downLocked(network, netnsName string) {
	k := devKey{network, netnsName}
	if d := m.devs[k]; d != nil {
		d.close()
		delete(m.devs, k)
	}
}

// publishLocked makes the data path see the devices as they are.
func (m *Manager) publishLocked() {
	local := map[string]map[netip.Addr]*device{}
	for _, d := range m.devs {
		if local[d.network] == nil {
			local[d.network] = map[netip.Addr]*device{}
		}
		local[d.network][d.att.IP] = d
	}
	m.devices.Store(&local)
}

func (m *Manager) drop(reason string) { m.dropped.WithLabelValues(reason).Inc() }
