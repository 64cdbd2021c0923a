"""``seg-sparse convert-cityscapes``: make ``*_labelTrainIds.png`` for a real Cityscapes root."""

from ._delegate import DelegatedCommand

_COMMAND = DelegatedCommand(
    "convert-cityscapes", "seg_sparse.data.cityscapes_convert",
    help="convert a Cityscapes root (gtFine) to *_labelTrainIds.png",
)
add_parser = _COMMAND.add_parser
run = _COMMAND.run
