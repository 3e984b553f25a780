package routing

import "testing"

// neighbours are the routers of sites 1 and 2, linked, once 2 took the
// records 1 sent after set(1).
func neighbours(set func(a *Router)) (a, b *Router) {
	a, b = New(id(1), "a", 0), New(id(2), "b", 0)
	set(a)
	a.SetLocal(links(2), nil, nil)
	b.SetLocal(links(1), nil, nil)
	a.NeighborUp(id(2))
	b.NeighborUp(id(1))
	for _, m := range a.Ready().Messages {
		b.Step(id(1), m.Record)
	}
	a.Advance()
	return a, b
}

// A site's seal key travels in its record: a neighbour's table returns it,
// and a site that advertises none has none.
func TestSealKeyTravels(t *testing.T) {
	key := [SealKeyLen]byte{0: 1, 31: 2}
	a, b := neighbours(func(a *Router) { a.SetSealKey(key, [SealKeyLen]byte{}) })
	got, ok := b.Table().SealKey(id(1))
	if !ok || got != key {
		t.Fatalf("b sees a's seal key %x (%v), want %x", got, ok, key)
	}
	if _, ok := a.Table().SealKey(id(2)); ok {
		t.Error("a sees a seal key for b, which advertises none")
	}
	if _, ok := b.Table().SealKey(id(9)); ok {
		t.Error("seal key of an unknown site")
	}
}

// A site's feature bits travel in its signed record, unknown ones
// included, and a site built before them (no extension) has none.
func TestFeaturesTravel(t *testing.T) {
	const later = 1 << 40 // a bit this version does not know
	a, b := neighbours(func(a *Router) { a.SetFeatures(FeatureDirectStreams | later) })
	if !b.Table().HasFeature(id(1), FeatureDirectStreams) || !b.Table().HasFeature(id(1), later) {
		t.Fatal("b does not see a's feature bits")
	}
	if a.Table().HasFeature(id(2), FeatureDirectStreams) {
		t.Error("a sees a feature of b, which sets none")
	}
	if b.Table().HasFeature(id(9), FeatureDirectStreams) {
		t.Error("a feature of an unknown site")
	}
	seq := a.Local().Seq
	a.SetFeatures(FeatureDirectStreams | later)
	if a.Local().Seq != seq {
		t.Error("setting the same features again originated a new record")
	}
}
