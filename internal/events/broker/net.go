package broker

import (
	"net"

	"weft.dev/weft/internal/siteid"
)

// ServeStream serves an event stream that the neighbour from opened to
// this one.
func (b *Broker) ServeStream(c net.Conn, tag string, from siteid.ID) {
	defer c.Close()
	switch tag {
	case TagTree:
		b.serveTree(c, from)
	case TagLog:
		b.serveLog(c, from)
	}
}

// admit reports whether an event that origin published may go to this
// site's subscribers (Config.Admit); this site's own events always may.
func (b *Broker) admit(from, origin siteid.ID, subject string) bool {
	return b.cfg.Admit == nil || origin == b.cfg.Self || b.cfg.Admit(from, origin, subject)
}
