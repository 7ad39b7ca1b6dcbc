"""The cluster tier's fixtures (see ``tests/cluster/fixtures.py``)."""

from tests.cluster.fixtures import cluster, kube, namespace  # noqa: F401
