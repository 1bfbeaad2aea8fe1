"""What every stage knows about Kubernetes objects, in one place.

- :mod:`.objects`: objects as plain JSON, :func:`~.objects.lookup` into them, the metadata
  only an API server sets, the body an apply sends;
- :mod:`.identity`: which group/versions serve the same objects, built-in groups, the names
  kubectl accepts for a type; :mod:`.kinds`: the plural and scope of every built-in kind;
  :mod:`.types`: a resource type; :mod:`.paths`: collection and object URLs;
- :mod:`.scope`: which namespaces and types a run covers;
- :mod:`.regenerated`: what a cluster makes itself (export skips it, verify does not count it);
- :mod:`.order`: the order objects are created in (and deleted, reversed);
- :mod:`.owners`: owner references relinked across clusters;
- :mod:`.readiness`: when a live object is ready, or will never be;
- :mod:`.inventory`: what a snapshot holds within a scope, phase by phase;
- :mod:`.gitops`: which GitOps tool (Argo CD, Flux) manages an object;
- :mod:`.quantity`: resource quantities (``500m``, ``1Gi``) as numbers.

Stages (export, transform, importer, verify, volumes, traffic) import from here and never
from each other.
"""
