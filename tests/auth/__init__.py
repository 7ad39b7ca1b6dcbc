"""Tests of controlplane.auth."""
