package telemetry

import "sync"

// series finds the children of one metric vector by their label values,
// without the vector's own lookup on every request: WithLabelValues checks
// and hashes every value and takes the vector's lock, where a child found
// once is kept here in a map that reads without locking.
//
// A child kept here must stay the vector's: nothing may delete or reset the
// vector's series, or the cache would count into a child no longer
// exported. Metrics keeps its vectors to itself and never removes a series,
// and every label value in a key comes from a bounded set (route patterns,
// methods, status codes, operation names bounded by Metrics.opNames), so the
// map holds no more entries than the exposition has series.
type series[K comparable, M any] struct {
	children sync.Map // K → M
	// child returns the vector's child for a key, creating its series.
	child func(K) M
}

// get returns the child for k, creating it on first use.
func (s *series[K, M]) get(k K) M {
	if c, ok := s.children.Load(k); ok {
		return c.(M)
	}
	c, _ := s.children.LoadOrStore(k, s.child(k))
	return c.(M)
}
