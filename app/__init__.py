"""Tocsin: a security findings aggregator and notification hub."""

__version__ = "0.1.0"
