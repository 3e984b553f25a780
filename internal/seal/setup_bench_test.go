package seal

import (
	"testing"

	"weft.dev/weft/internal/forward"
	"weft.dev/weft/internal/siteid"
)

// BenchmarkStreamSetup is what sealing adds to opening a stream, both ends
// together, without I/O: keys, preamble, replay check and two Conns.
func BenchmarkStreamSetup(b *testing.B) {
	ingress, egress := katKey(1), katKey(2)
	h := forward.NewHeader(forward.KindTCP, "orders", siteid.ID{1}, []siteid.ID{{2}, {3}})
	bind := binding(h)
	init, msg1, _ := initiate(ingress, siteid.ID{3}, egress.Public, bind, 1, 1, nil)
	resp, _ := respond(egress, siteid.ID{1}, bind, msg1, nil, testNow)
	sess, _ := init.finish(resp.msg2, testNow)
	var w window
	b.ReportAllocs()
	for b.Loop() {
		n := sess.streams.Add(1)
		k := sess.streamKeys(n, binding(h))
		pre := (&preamble{kind: kindResume, index: 1, counter: n, check: k.check}).marshal()
		newConn(nil, siteid.ID{}, k.i2r, k.r2i, nil)
		p, _ := parsePreamble(pre)
		k2 := resp.sess.streamKeys(p.counter, binding(h))
		w.mark(p.counter)
		newConn(nil, siteid.ID{}, k2.r2i, k2.i2r, nil)
	}
}
