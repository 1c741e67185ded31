package cache

// Owner is the name this cache holds store leases under (Options.Owner).
// The refresh queue's workers and the scheduler's cluster-wide jobs use it
// too, so that one gateway is one owner everywhere.
func (c *Cache) Owner() string { return c.opts.Owner }
