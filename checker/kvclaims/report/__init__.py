"""Renderers over one report (data): text, JSON, JUnit. Rendering comes last (ARCHITECTURE.md)."""
