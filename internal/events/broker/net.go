package broker

import (
	"net"

	"weft.dev/weft/internal/siteid"
)

// ServeStream serves an event stream another site opened to this one.
func (b *Broker) ServeStream(c net.Conn, tag string, origin siteid.ID) {
	defer c.Close()
	switch tag {
	case TagTree:
		b.serveTree(c)
	case TagLog:
		b.serveLog(c, origin)
	}
}
