"""Batch providers behind one protocol (`base.Provider`)."""
