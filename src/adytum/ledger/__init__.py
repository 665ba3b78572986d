"""The receipts ledger: an append-only Merkle log of receipt events, signed tree heads and proofs."""
