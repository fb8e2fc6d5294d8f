"""Dashboards service: device events -> Grafana dashboard files -> public dashboards.

app.py wires it; lifecycle.py tells the create/update/delete story; render.py,
files.py, grafana.py, loader.py, registry.py, events.py and reconcile.py each
do one part of it. See docs/dashboards.md.
"""
