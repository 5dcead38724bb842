"""Studies: spec -> cells -> packs -> ledger, with local and Ray executors."""
