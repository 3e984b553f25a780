// Package balance chooses which candidate (a site serving an address) gets
// the next unit of work: a TCP connection, or an HTTP request.
//
// It is a pure state machine in the sense of STYLE.md: no goroutines,
// sockets or clock reads. Time comes in as a now argument and randomness
// from an injected *rand.Rand, so the same inputs and seed give the same
// choices, and tests run without a network. The caller owns one Picker per
// address and must serialise every call to it with its own mutex: a Picker
// is NOT safe for concurrent use, because Pick, Start and Done are meant to
// be called under one lock so that "choose, then count" is atomic and two
// concurrent connections cannot both squeeze under a limit.
//
// # Choice
//
// Candidates are grouped into tiers by Cost. The cheapest tier that holds a
// usable candidate (neither saturated nor ejected) wins, so work overflows
// to the next candidate of the tier and then to costlier tiers (remote
// sites) only when the cheap ones are full or failing, and comes back as
// soon as they free up: nothing is cached between calls.
//
// That is the default Policy, ByCost; ByLatency and ByCostLatency (see
// Policy) put every usable candidate in one tier instead.
//
// A candidate whose path is under suspicion (Candidate.Suspect) is used
// only when no usable one is left, one that looks stalled
// (Candidate.Stalled) after those, and ejected ones last. Within the tier
// of such a class, silence ranks first (Candidate.Silent): only the
// candidates heard from last compete below, because latency and load
// would favour a frozen site, idle and fast until it stopped.
//
// Within a tier the Picker uses power of two choices (Mitzenmacher; the
// shape of Finagle's and Linkerd's P2C-PeakEWMA): draw two distinct usable
// candidates at random, weighted by Capacity, and keep the one with the
// lower score
//
//	score = EWMA latency × (1 + load × meanCapacity / Capacity)
//
// where load is the candidate's open connections plus requests in flight
// and meanCapacity is the mean Capacity of the tier's usable candidates.
// With equal capacities this is (load+1) × EWMA, the classic formula. weft
// deviates from (load+1)/Capacity × EWMA on purpose: Capacity models
// parallelism, which shortens the queue ahead of a request but not the
// request's own service time, so only the load term is divided by it. The
// difference shows when the system is idle: with (load+1)/Capacity the
// larger candidate wins every comparison and takes all sequential traffic,
// while here idle candidates tie and the Capacity-weighted draw alone
// decides, so shares follow Capacity at any load. Dividing by the tier mean
// makes Capacity a relative weight (1:3 behaves like 100:300).
//
// A candidate without a latency sample yet scores the mean of the measured
// candidates of its tier: a neutral guess that gives a new site a fair
// share to get measured, where Finagle's zero-cost start would send it
// every request of a burst before the first answer returns. When no one in
// the tier is measured, load and Capacity decide alone.
//
// # Latency
//
// The EWMA is a peak-EWMA with time decay, as in Finagle and Linkerd: a
// sample above the estimate replaces it at once (a slowing site loses
// traffic immediately, which is what protects the tail), a lower one is
// blended in with weight 1-2^(-Δt/HalfLife), so the memory is measured in
// time and not in samples and does not depend on the request rate. When
// read, the estimate also decays toward zero by the same half-life since
// its last sample. That is how a site once seen as slow is probed again
// after a few half-lives instead of being starved forever by sequential
// traffic. Failed and cancelled attempts (hedging losers) count only as a
// lower bound: they may raise the estimate, never lower it, so a site that
// fails fast does not look fast.
//
// # Limits
//
// Limits follow Istio's connectionPool, enforced here as admission rather
// than queueing: a candidate at a limit is saturated and skipped.
// MaxConnections bounds open connections (Start with Connection, the TCP
// path); MaxRequests bounds requests in flight (Start with Request, the
// HTTP path). MaxPending is Envoy's pending queue: with HTTP/1.1 a request
// beyond MaxConnections waits for a pooled connection, so the Picker counts
// requests in flight beyond MaxConnections as pending and saturates the
// candidate at MaxConnections+MaxPending. MaxPending therefore acts only
// together with MaxConnections; alone, MaxRequests is the limit to use.
//
// # Outlier detection
//
// Envoy's consecutive-errors detector with Istio's defaults (5 errors,
// 10s interval, 30s base ejection, 10% max ejected): ConnectFailure,
// GatewayError and ServerError count, Success and ClientError reset the
// run (as any non-5xx answer does in Envoy), Cancelled does not count. An
// ejection lasts BaseEjection × times ejected, capped by MaxEjection; the
// times-ejected count drops by one for each Interval the candidate stays
// healthy. Where weft differs from Envoy:
//   - ejections end exactly at their time (now is an argument), not at the
//     next interval tick;
//   - an ejection refused by the cap keeps the error run, so the next error
//     retries it, where Envoy would wait for a fresh run of errors;
//   - an ejection is refused when no other candidate is usable, so at least
//     one stays when all would go;
//   - when every candidate that is not saturated is ejected anyway (the set
//     changed, or ejections predate a saturation), Pick falls back to the
//     ejected ones in the same tier order rather than refusing: a chance of
//     an answer beats a certain refusal, in the spirit of Envoy's panic
//     threshold. Saturated and excluded candidates are never returned.
//
// The set for the cap and the last-one rule is every key the Picker knows:
// keys passed in cands to Pick, Order or Snapshot, or to Start, until
// Forget drops them. Call Forget when the candidate set changes.
//
// # Calling sequence
//
// TCP, per connection: Pick, Start(key, Connection); when the connect ends,
// Observe(now, key, connectTime, Success) or Done(now, key, Connection,
// connectTime, ConnectFailure) and, on failure, Pick again with the tried
// keys excluded; when an established connection closes, Done(now, key,
// Connection, 0, Cancelled), which releases the slot without a sample.
//
// HTTP, per request: Pick, Start(key, Request), then Done(now, key,
// Request, timeToResponseHeaders, OutcomeForStatus(code)); a hedge copy
// that lost is Done with Cancelled and its elapsed time.
package balance
