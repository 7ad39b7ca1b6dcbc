"""Tests of the Helm chart in helm/city-platform, with the real helm CLI and the real cluster."""
