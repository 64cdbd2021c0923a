#!/usr/bin/env python
"""Generate synthetic street scenes as a COCO 2017 detection dataset (see ``--help``)."""

from seg_sparse.data.synthetic_coco import main

if __name__ == "__main__":
    raise SystemExit(main())
