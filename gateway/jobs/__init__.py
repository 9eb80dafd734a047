"""Batch jobs: files, durable jobs, their runner and callbacks."""
