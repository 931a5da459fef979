"""Turning a webhook and a record into the exact HTTP request that is sent."""
