"""Tests of the Helm chart in helm/city-platform, with real Helm (helm-sdkpy)."""
