// Pins the Barman Cloud Plugin of CloudNativePG for the cluster tier (tests/cluster/build.sh):
// nothing is built, only its CRDs (config/crd/bases/, plain YAML: the ObjectStore) are installed
// into the cluster; no plugin runs.
module cityplatform.test/cluster/plugin-barman-cloud

go 1.24.4

require github.com/cloudnative-pg/plugin-barman-cloud v0.7.0
