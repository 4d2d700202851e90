"""``python -m pipelines ui``: a local web page over the run folder's executions, registry and endpoints."""
