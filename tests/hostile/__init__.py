"""Handlers and hooks that misbehave: the server must survive them."""
