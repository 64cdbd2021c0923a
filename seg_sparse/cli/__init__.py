"""The ``seg-sparse`` command line: one module per command, see :mod:`seg_sparse.cli.main`."""
