"""Reports: statistics, tables and figures from the ledger (reads the ledger only)."""
