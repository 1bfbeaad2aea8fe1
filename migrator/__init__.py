"""migrator: move every workload of one Kubernetes cluster to a new one."""

__version__ = "0.1.0"
