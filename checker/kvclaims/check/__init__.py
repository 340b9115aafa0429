"""The deciding core: data in, data out, no I/O (ARCHITECTURE.md)."""
