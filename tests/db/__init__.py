"""Tests of controlplane.db."""
