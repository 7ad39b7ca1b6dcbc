// Pins cert-manager for the cluster tier (tests/cluster/build.sh): nothing is built, only its
// CRDs (deploy/crds/, plain YAML) are installed into the cluster. controlplane/rendering/crds/
// vendors the Certificate schema of the same version.
module cityplatform.test/cluster/cert-manager

go 1.24.4

require github.com/cert-manager/cert-manager v1.21.2
