"""What produces evidence: the simulated issuer (the hardware and Intel's services in simulation mode), and
on SGX the host's DCAP service.

* :mod:`adytum.issuer.quoter` — the simulated platform's quoter (what an enclave runs; measured);
* :mod:`adytum.issuer.service` — the IAS-shaped report service (host side);
* :mod:`adytum.issuer.devroot` — the development root CA and platform registry (host side);
* :mod:`adytum.issuer.dcap` — on SGX: an enclave's DCAP quote published with its collateral (host side).

It produces evidence in the format :mod:`adytum.attestation.simulated` defines; the verifier
imports nothing of it. This file imports none of its modules, so that an enclave loading the
quoter does not load the report service or the development CA.
"""
