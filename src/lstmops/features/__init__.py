"""Features: fitted transformers saved as JSON, and the preparer base each problem module builds its preparer on."""
