#!/usr/bin/env python
"""Generate synthetic street scenes in the Cityscapes layout (see ``--help``)."""

from seg_sparse.data.synthetic import main

if __name__ == "__main__":
    raise SystemExit(main())
