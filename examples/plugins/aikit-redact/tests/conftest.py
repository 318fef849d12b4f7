"""aikit ships pytest fixtures for plugin authors: a fresh plugin host and tiny offline models."""

pytest_plugins = ["aikit.testing.fixtures"]
