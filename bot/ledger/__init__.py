"""The database every worker shares: deliveries, slots taken, shared state, mentions, leases, rate budgets."""
