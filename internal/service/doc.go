// Package service carries client connections to services: listeners accept at a
// local port and pick a connector for their address anywhere in the network (by
// path cost, capacity and load, through the balance package); connectors deliver
// streams that arrive for an address to a local target.
//
// # Shape
//
// Per address, the [Manager] keeps an immutable view (where the address is
// served, with limits and the balancer configuration) that it rebuilds when
// this site's connectors or the route table change, and the balancing
// state the request path updates under the address's own lock. Requests
// and connections never scan connectors or the table. The site calls
// [Manager.TableChanged] after each new table; a request that finds a newer
// table than its view's rebuilds the view itself, so a late call only
// delays forgetting sites that left.
//
// Which copies of an HTTP request go where, which answer wins and when to
// give up is decided by a pure state machine (race.go), driven by a thin
// loop that sends the copies (attempt.go). Time comes from Config.Clock.
//
// # Locks
//
// Manager.mu before address.mu; neither is held across I/O or a call into
// the Network other than Table. lifecycle.mu and answerQueue.mu are leaves.
//
// # Goroutines
//
// Every goroutine the Manager starts (accept loops, carried connections,
// hedged copies, the stream server, framed streams' requests and request
// bodies) ends by [Manager.Close], which also
// closes every connection it carries and waits for them.
package service
