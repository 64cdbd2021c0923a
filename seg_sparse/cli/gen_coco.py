"""``seg-sparse gen-coco``: synthetic street scenes as a COCO 2017 detection dataset."""

from ._delegate import DelegatedCommand

_COMMAND = DelegatedCommand(
    "gen-coco", "seg_sparse.data.synthetic_coco",
    help="generate synthetic street scenes as a COCO detection dataset (boxes)",
)
add_parser = _COMMAND.add_parser
run = _COMMAND.run
