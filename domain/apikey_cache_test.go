package domain

import (
	"strconv"
	"testing"
	"time"
)

func TestAuthCache_Put(t *testing.T) {
	now := time.Now()
	k := &APIKey{ID: "k", Version: 1}
	cred := credential{keyID: "k", secretHash: "h"}

	t.Run("OK", func(t *testing.T) {
		c := newAuthCache()
		c.invalidate("other")
		c.put(cred, k, now, 0)
		if c.get(cred, now) == nil {
			t.Fatal("a key read before another key changed was not cached")
		}
	})

	t.Run("SkippedAfterInvalidation", func(t *testing.T) {
		c := newAuthCache()
		gen := c.generation()
		c.invalidate("k")
		c.put(cred, k, now, gen)
		if c.get(cred, now) != nil {
			t.Fatal("a key read before it changed was cached after the change")
		}
	})

	t.Run("SkippedOnceForgotten", func(t *testing.T) {
		// Past authCacheSize invalidations the cache forgets which keys
		// changed; a read from before then is refused whichever key it is.
		c := newAuthCache()
		gen := c.generation()
		c.invalidate("k")
		for i := range authCacheSize {
			c.invalidate(strconv.Itoa(i))
		}
		if _, ok := c.dropped["k"]; ok {
			t.Fatal("the invalidations were all kept; the test does not reach the forgetting")
		}
		c.put(cred, k, now, gen)
		if c.get(cred, now) != nil {
			t.Fatal("a key read before it changed was cached once the change was forgotten")
		}
		c.put(cred, k, now, c.generation())
		if c.get(cred, now) == nil {
			t.Fatal("a key read after every invalidation was not cached")
		}
	})
}
