"""Features: fitted transformers saved as JSON, and the per-problem preparers (raw table ⇄ model arrays)."""
