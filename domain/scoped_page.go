package domain

// scopedBatch is how many items scopedPage reads at a time when it has to
// skip items outside the caller's project scope.
const scopedBatch = MaxPageSize

// scopedPage returns the page req asks for of the items keep admits: it
// reads through fetch (items after a key, at most limit of them, in list
// order) until it has one more than req.First or the list ends. key gives an
// item's cursor key. With keep nil, it is one fetch.
func scopedPage[T any](req PageRequest, fetch func(after string, limit int) ([]T, error), key func(T) string, keep func(T) (bool, error)) (Page[T], error) {
	if keep == nil {
		items, err := fetch(req.After, req.First+1)
		if err != nil {
			return Page[T]{}, err
		}
		return pageOf(items, req), nil
	}
	out := []T{}
	for after := req.After; len(out) <= req.First; {
		items, err := fetch(after, scopedBatch)
		if err != nil {
			return Page[T]{}, err
		}
		for _, it := range items {
			ok, err := keep(it)
			if err != nil {
				return Page[T]{}, err
			}
			if ok {
				out = append(out, it)
			}
		}
		if len(items) < scopedBatch {
			break
		}
		after = key(items[len(items)-1])
	}
	return pageOf(out, req), nil
}
