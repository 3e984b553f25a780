package vl3

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/miekg/dns"

	"weft.dev/weft/internal/siteid"
)

// Data path tuning.
const (
	// senderQueue bounds the packets waiting for one stream; beyond it
	// packets are dropped, as a full router queue drops them, and TCP in
	// the workloads backs off.
	senderQueue = 1024
	// openTimeout bounds opening a stream to the owning site.
	openTimeout = 10 * time.Second
	// retryAfter is how long a sender whose stream could not be opened
	// drops packets before it tries again, so that an unreachable site
	// does not cost a stream open per packet.
	retryAfter = time.Second
	// batchBytes is the write buffer of a stream: packets queued together
	// leave in one write (and one sealed record).
	batchBytes = 64 << 10
)

// device is a local attachment's TUN, and its DNS server if it has one.
type device struct {
	f       *os.File
	network string
	att     Attachment
	dns     *dns.Server
}

func (d *device) close() {
	d.f.Close()
	if d.dns != nil {
		stopDNS(d.dns, d.att)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, MaxPacket); return &b }}

// readDevice carries the packets a workload sends until the device closes.
func (m *Manager) readDevice(d *device) {
	for {
		bp := bufPool.Get().(*[]byte)
		n, err := d.f.Read(*bp)
		if err != nil {
			bufPool.Put(bp)
			if !errors.Is(err, os.ErrClosed) {
				m.cfg.Logger.Warn("vL3 device read failed; the attachment is down until re-attached", "network", d.network, "netns", d.att.Netns, "err", err)
			}
			return
		}
		if !m.route(d, bp, n) {
			bufPool.Put(bp)
		}
	}
}

// route sends one packet read from d on; it reports whether it kept the
// buffer (queued for a stream).
func (m *Manager) route(d *device, bp *[]byte, n int) bool {
	pkt := (*bp)[:n]
	src, dst, err := Addresses(pkt)
	switch {
	case err != nil:
		m.drop(dropMalformed)
		return false
	case src != d.att.IP:
		m.drop(dropSpoofed)
		return false
	}
	if peer := (*m.devices.Load())[d.network][dst]; peer != nil {
		m.local.Inc()
		peer.f.Write(pkt)
		return false
	}
	owner, ok := m.routes.Load().Owner(d.network, dst)
	switch {
	case !ok:
		m.drop(dropNoRoute)
		return false
	case owner == m.cfg.Self:
		m.drop(dropNoAttachment)
		return false
	}
	s := m.sender(d.network, owner)
	if s == nil {
		return false
	}
	select {
	case s.q <- outPacket{bp, n}:
		return true
	default:
		m.drop(dropQueueFull)
		return false
	}
}

type outPacket struct {
	buf *[]byte
	n   int
}

// sender carries the packets of one network to one site over one stream.
type sender struct {
	q    chan outPacket
	done chan struct{}
	once sync.Once
}

func (s *sender) close() { s.once.Do(func() { close(s.done) }) }

func (m *Manager) sender(network string, dst siteid.ID) *sender {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return nil
	}
	k := senderKey{network, dst}
	s := m.senders[k]
	if s == nil {
		s = &sender{q: make(chan outPacket, senderQueue), done: make(chan struct{})}
		m.senders[k] = s
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.runSender(k, s)
		}()
	}
	return s
}

// runSender writes queued packets to the stream, opening it when needed,
// flushing whenever the queue is empty: packets that arrive together leave
// together.
func (m *Manager) runSender(k senderKey, s *sender) {
	var (
		conn      net.Conn
		w         *bufio.Writer
		failedAt  time.Time
		closeConn = func() {
			if conn != nil {
				conn.Close()
				conn, w = nil, nil
			}
		}
	)
	defer closeConn()
	for {
		var p outPacket
		select {
		case <-s.done:
			return
		case <-m.ctx.Done():
			return
		case p = <-s.q:
		}
		if conn == nil && time.Since(failedAt) > retryAfter {
			ctx, cancel := context.WithTimeout(m.ctx, openTimeout)
			c, err := m.cfg.Open(ctx, k.network, k.dst)
			cancel()
			if err != nil {
				failedAt = time.Now()
				m.cfg.Logger.Warn("vL3 stream to a site could not be opened; its packets are dropped for a second", "network", k.network, "site", k.dst.String(), "err", err)
			} else {
				conn, w = c, bufio.NewWriterSize(c, batchBytes)
			}
		}
		if conn == nil {
			m.drop(dropUnreachable)
			bufPool.Put(p.buf)
			continue
		}
		err := writeFrame(w, (*p.buf)[:p.n])
		bufPool.Put(p.buf)
		m.sent.Inc()
		if err == nil && len(s.q) == 0 {
			err = w.Flush()
		}
		if err != nil {
			m.drop(dropUnreachable)
			m.cfg.Logger.Warn("vL3 stream to a site broke; the next packet opens a new one", "network", k.network, "site", k.dst.String(), "err", err)
			closeConn()
		}
	}
}

func writeFrame(w *bufio.Writer, pkt []byte) error {
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(pkt)))
	w.Write(l[:])
	_, err := w.Write(pkt)
	return err
}

// ServeStream takes the packets of network that site origin sends over st
// and writes each to the local attachment it is for. A packet whose source
// is not in origin's prefix, or whose destination is not attached here, is
// dropped and counted, as is a malformed one; a stream that breaks mid-frame
// ends.
func (m *Manager) ServeStream(st Stream, network string, origin siteid.ID) {
	defer st.Close()
	m.mu.Lock()
	if m.ctx.Err() != nil {
		m.mu.Unlock()
		return
	}
	m.wg.Add(1) // under mu after the check, so never after Close's Wait began
	m.mu.Unlock()
	defer m.wg.Done()
	if err := st.Confirm(); err != nil {
		return
	}
	stop := context.AfterFunc(m.ctx, func() { st.Close() })
	defer stop()
	fr := NewFrameReader(st)
	for {
		pkt, dst, err := fr.Next()
		if errors.Is(err, ErrMalformed) {
			m.drop(dropMalformed)
			continue
		}
		if err != nil {
			return
		}
		if !m.fromOwner(network, origin, pkt) {
			m.drop(dropSpoofed)
			continue
		}
		d := (*m.devices.Load())[network][dst]
		if d == nil {
			m.drop(dropNoAttachment)
			continue
		}
		m.received.Inc()
		d.f.Write(pkt)
	}
}

// fromOwner reports whether pkt's source is in the prefix of network that
// origin, the authenticated sending site, owns: no site speaks for
// another's addresses.
func (m *Manager) fromOwner(network string, origin siteid.ID, pkt []byte) bool {
	p, ok := m.routes.Load().Prefix(network, origin)
	return ok && p.Contains(netip.AddrFrom4([4]byte(pkt[12:16])))
}
