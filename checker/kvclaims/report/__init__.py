"""Renderers over one decided report (data): text, JSON, JUnit, and the timeline (timeline.py, the
data the pictures draw) as HTML, a plot or an ASCII strip. Rendering comes last
(docs/architecture.md): nothing here opens or decides a trace."""
