// Package vl3 gives workloads at many sites one flat layer-3 network (seed
// 003, NSM's vL3): a Network is a CIDR known network-wide; each site that
// has attachments owns one prefix of it; an attachment is a TUN device in a
// workload's network namespace with an address from its site's prefix.
//
// Ownership rides the signed site record without changing its format: a
// site announces each network it defines and each prefix it owns as a
// connector address ([NetworkAddress], [PrefixAddress]), so signing,
// flooding, path computation and the address policy across organisations
// apply to a network as to any other address.
//
// The pure parts, tested without sockets: prefix claims and address
// allocation ([ClaimPrefix], [Pool]), the routing of a packet to the site
// owning its destination ([Routes]), and the framing of packets on a link
// stream ([AppendFrame], [FrameReader]). The I/O: TUN devices in network
// namespaces (tun_linux.go) and the [Manager] that carries packets between
// them and streams. The wire format is in spec.md.
package vl3
