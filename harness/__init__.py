"""Real local services shared by the tests and the benchmarks (not part of the installed package).

* :mod:`harness.services`: a CNCF distribution registry, Dask clusters started the way the local
  stack starts them, and a PEP 503 package index over the wheelhouse ``make test`` downloads;
* :mod:`harness.images`: base images pushed to a registry, and a Docker daemon of its own.

Nothing here is mocked. A missing binary fails with a message saying how to get it
(``make test`` sets up everything).
"""
