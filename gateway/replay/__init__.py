"""Streamed generations kept for replay, so a client that lost its connection resumes."""
