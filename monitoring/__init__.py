"""The mesh's monitoring: the local Prometheus server's configuration (`prometheus.py`) and rules."""
