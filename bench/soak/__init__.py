"""Soak: engine workers on PostgreSQL finishing runs while workers are SIGKILLed."""
