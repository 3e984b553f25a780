package routing

// Restrict returns a table with the same sites, links and routes as t in
// which each record is replaced by what view returns for it: the owner's
// address policy uses it to drop the connectors and interests it may not
// use. view must return r itself or a record of the same site that shares
// nothing it changes with r (records are shared between tables); it
// returns r for records it keeps whole.
func (t *Table) Restrict(view func(r *Record) *Record) *Table {
	g := *t.g
	g.recs = make([]*Record, len(t.g.recs))
	changed := false
	for i, r := range t.g.recs {
		g.recs[i] = view(r)
		changed = changed || g.recs[i] != r
	}
	if !changed {
		return t
	}
	return &Table{self: t.self, g: &g, cost: t.cost, pred: t.pred}
}
