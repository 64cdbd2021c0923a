"""``seg-sparse gen-data``: synthetic street scenes in the Cityscapes layout."""

from ._delegate import DelegatedCommand

_COMMAND = DelegatedCommand(
    "gen-data", "seg_sparse.data.synthetic",
    help="generate synthetic street scenes in the Cityscapes layout",
)
add_parser = _COMMAND.add_parser
run = _COMMAND.run
