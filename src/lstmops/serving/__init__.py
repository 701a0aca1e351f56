"""Serving: raw rows in and out (rawio), input checks (inputs), predict and observe (predict)."""
