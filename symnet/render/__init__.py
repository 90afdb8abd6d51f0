"""Renderers: plain text, LaTeX, Markdown, JSON and the rich (Jupyter) displays. Views only."""
