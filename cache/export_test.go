package cache

// RefreshQueued reports whether a refresh of key waits for the one under
// way, so that tests can release that one knowing the order.
func (c *Cache) RefreshQueued(key string) bool {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	st := c.refreshes[key]
	return st != nil && st.next != nil
}

// RefreshCallers is how many callers the refresh of key under way answers
// (0 when none is).
func (c *Cache) RefreshCallers(key string) int {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if st := c.refreshes[key]; st != nil {
		return st.running.callers
	}
	return 0
}
