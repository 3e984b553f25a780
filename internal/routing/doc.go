// Package routing is weft's link-state router: sites flood versioned
// [Record]s over their links, and every site computes shortest paths by
// cost to every other and the segment lists traffic carries.
//
// The [Router] is a pure state machine in the style of etcd's raft: the
// caller reports link sessions ([Router.NeighborUp], [Router.NeighborDown]),
// its own state ([Router.SetLocal]) and received records ([Router.Step]),
// then sends what [Router.Ready] returns and calls [Router.Advance]. It
// starts no goroutines, opens no sockets and reads no clock, so tests drive
// networks of thousands of sites step by step and get the same result
// every time.
//
// Records are signed by their origin's identity key ([NewSigned],
// [Record.Sign]); the router does not verify what it is given: the caller
// drops records that fail [Record.Verify] before [Router.Step], so the
// router stays free of caches and counters.
//
// Rules the router keeps:
//   - A record replaces a stored one only with a higher Seq, and is then
//     forwarded to every neighbor but the sender; an older copy from a
//     neighbor is answered with ours. Each site therefore takes each
//     (site, Seq) once: no loops, no storms.
//   - A copy of our own record that is newer, or as new but different, is
//     left over from before a restart: the router jumps past it.
//   - A link counts only if both ends list each other; its cost is the one
//     the sending end advertises, 0 counting as 1. Equal-cost paths break
//     towards the lower predecessor ID.
//   - Records of sites that are no longer reachable leave the table and
//     the database when the table is next computed (see [Router.Table]).
//
// The wire format of a record is in spec.md beside this file.
package routing
