"""Tests of controlplane.tenants."""
