r"""A step of the official FCIS code that this project leaves out, runnable to measure what it changes.

:func:`fcis_twin.reference.voting.mask_voting` returns each detection's voted mask at the image's resolution.  The
official code keeps less: ``mask_aggregation`` and ``cpu_mask_voting`` (``lib/mask/mask_transform.py``) crop each
voted average to the tight box of its pixels ``>= binary_thresh`` and resize the crop to ``P x P``, and its COCO
evaluation (``mask_voc2coco`` in ``lib/utils/mask_voc2coco.py``) resizes that back into the box and binarizes it at
``>= binary_thresh``.  :func:`voted_averages` recomputes the averages that ``mask_voting`` binarizes and
:func:`official_resampling` applies the two resizes, so that ``docs/evaluation.md`` can score both.
"""

import numpy as np

from .paste import box_regions, paste_masks, paste_region
from .voting import Detections, check_voting_args, voted_average, voters_of


def voted_averages(boxes, cls_masks, cls_probs, image_shape, detections, *, vote_threshold=0.5):
    """The float32 voted average behind each detection's mask: ``(D, H, W)``, 0 outside its voters.

    Parameters
    ----------
    boxes, cls_masks, cls_probs, image_shape, vote_threshold
        What :func:`fcis_twin.reference.voting.mask_voting` was given.
    detections : Detections
        What it returned; ``rois`` and ``labels`` name each detection's ROI and class.

    Returns
    -------
    averages : (D, H, W) float32 ndarray
        ``averages >= binary_threshold`` is ``detections.masks``.
    """
    a = check_voting_args(boxes, cls_masks, cls_probs, image_shape, nms_threshold=0.3,
                          vote_threshold=vote_threshold, binary_threshold=0.4, max_detections=1, score_threshold=0)
    if not isinstance(detections, Detections):
        raise TypeError(f"detections must be Detections, got {type(detections).__name__}")
    height, width = a.image_shape
    regions = box_regions(a.boxes, height, width)
    averages = np.zeros((len(detections), height, width), np.float32)
    for d, (r, c) in enumerate(zip(detections.rois, detections.labels, strict=True)):
        voters = voters_of(a.boxes, r, a.vote_threshold)
        pasted = [paste_region(a.cls_masks[j, c], regions[j]) for j in voters]
        top, left, values = voted_average(voters, pasted, a.cls_probs[:, c])
        averages[d, top : top + values.shape[0], left : left + values.shape[1]] = values
    return averages


def official_resampling(averages, detections, *, output_size=21, binary_threshold=0.4):
    """Each detection's mask as the official code evaluates it: its voted average cropped to ``detections.boxes``,
    resized to ``P x P``, resized back into the box and binarized.

    Parameters
    ----------
    averages : (D, H, W) float32 ndarray
        From :func:`voted_averages`.
    detections : Detections
        Their ``boxes`` are the tight boxes of ``averages >= binary_threshold``, integer and half-open.
    output_size : int
        ``P`` (``MASK_SIZE``, 21).
    binary_threshold : float in (0, 1]
        ``BINARY_THRESH`` (0.4), used by both the official voting and its evaluation.

    Returns
    -------
    masks : (D, H, W) bool ndarray
        Both resizes are bilinear, OpenCV's ``INTER_LINEAR`` as ``cv2.resize`` does them in the official code
        (:func:`fcis_twin.reference.paste.paste_masks`, which also resizes non-square maps).
    """
    averages = np.asarray(averages, np.float32)
    masks = np.zeros(averages.shape, bool)
    p = output_size
    for d, (x1, y1, x2, y2) in enumerate(detections.boxes.astype(np.int64)):
        crop = averages[d, y1:y2, x1:x2]  # (h, w): the tight box of the voted mask
        squeezed = paste_masks(crop[None], [[0, 0, p, p]], (p, p))  # (1, P, P): the crop resized to P x P
        masks[d] = paste_masks(squeezed, detections.boxes[d : d + 1], averages.shape[1:],
                               threshold=binary_threshold)[0]
    return masks
