#!/usr/bin/env python
"""Convert Cityscapes gtFine polygons to *_gtFine_labelTrainIds.png (see ``--help``)."""

from seg_sparse.data.cityscapes_convert import main

if __name__ == "__main__":
    raise SystemExit(main())
