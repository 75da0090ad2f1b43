"""The audit trail: one hash-chained record per operation, committed before the answer leaves."""
