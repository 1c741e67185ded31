package cache

// RefreshQueued reports whether a refresh of key waits for the one under
// way, so that tests can release that one knowing the order.
func (c *Cache) RefreshQueued(key string) bool {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	st := c.refreshes[key]
	return st != nil && st.next != nil
}
