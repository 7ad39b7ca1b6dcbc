// Pins CloudNativePG for the cluster tier (tests/cluster/build.sh): nothing is built, only its
// CRDs (config/crd/bases/, plain YAML) are installed into the cluster; no operator runs.
module cityplatform.test/cluster/cloudnative-pg

go 1.24.4

require github.com/cloudnative-pg/cloudnative-pg v1.28.0
