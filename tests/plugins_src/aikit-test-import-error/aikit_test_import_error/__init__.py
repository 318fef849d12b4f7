"""Fails while being imported, like a plugin whose own dependency is missing or broken."""

raise RuntimeError("aikit_test_import_error is broken on purpose (raised at import)")
