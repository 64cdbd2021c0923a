"""Image files named on the command line: found (a file or every image under a folder) and
checked to decode before any work starts, so a bad file is named at once."""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def find_images(image_or_dir: str) -> list[str]:
    """The image itself, or every image file under a directory (recursively, sorted)."""
    if osp.isfile(image_or_dir):
        return [image_or_dir]
    if not osp.isdir(image_or_dir):
        raise FileNotFoundError(f"image or directory '{image_or_dir}' does not exist")
    found = sorted(
        osp.join(root, name)
        for root, _, names in os.walk(image_or_dir)
        for name in names if name.lower().endswith(IMAGE_SUFFIXES)
    )
    if not found:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under "
                                f"'{image_or_dir}'")
    return found


def check_images_decode(images: Sequence[str]) -> None:
    """Decode every image once before anything is written, so that a bad file stops the run
    with an error naming it instead of after the figures of the images before it."""
    import mmcv

    from .transforms import DataDecodeError, image_size

    for path in images:
        image_size(path)  # empty / not an image: named from the header alone
        try:
            decoded = mmcv.imread(path)
        except Exception as err:  # noqa: BLE001 - OpenCV raises cv2.error for damaged data
            raise DataDecodeError(f"cannot decode image '{path}': {err}") from err
        if decoded is None:
            raise DataDecodeError(f"cannot decode image '{path}'")
