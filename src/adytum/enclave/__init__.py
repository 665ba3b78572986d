"""The enclave: everything secret. Runs as its own process (`python -m adytum.enclave`).

Imports protocol, crypto and workloads only; never store, listener or manager.
"""
