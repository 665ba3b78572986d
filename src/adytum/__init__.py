"""adytum: a trusted compute framework for EEA Off-Chain Trusted Compute v1.1 work orders."""

__version__ = "0.1.0"
