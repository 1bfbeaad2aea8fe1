"""migrator: move every workload of one Kubernetes cluster to a new one."""

__version__ = "0.1.0"

# The volume mover's image (the project's Dockerfile builds it; push it where both clusters
# pull from). Here, not in the volumes stage, so the command line names it without loading
# the mover.
MOVER_IMAGE = "migrator-mover:latest"
