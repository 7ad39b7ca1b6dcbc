"""The cluster tier: a real Kubernetes control plane built from upstream Go modules."""
