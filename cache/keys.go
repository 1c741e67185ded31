package cache

import "strings"

// Keys returns the keys of product that this gateway's in-process tier
// holds. Refreshes that cannot name their keys (a change that affects every
// instance of a product) use it.
func (c *Cache) Keys(product string) []string {
	prefix := product + "/"
	var out []string
	for k := range c.mem.Keys() {
		if strings.HasPrefix(k, prefix) || k == product {
			out = append(out, k)
		}
	}
	return out
}
