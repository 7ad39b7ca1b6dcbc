from tests.cluster.fixtures import cluster, namespace  # noqa: F401
