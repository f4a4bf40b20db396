r"""Evaluation of instance masks.

For now, the mask IoU that matches detections to ground truth; COCO mask AP and the SBD mAP^r of the paper come
with step 3 of the roadmap.
"""

import numpy as np

from ._checks import as_array


def mask_iou(masks_a, masks_b):
    r"""Pairwise intersection over union of binary masks.

    Parameters
    ----------
    masks_a : (D, H, W) bool array_like
    masks_b : (G, H, W) bool array_like

    Returns
    -------
    iou : (D, G) float64 ndarray
        ``|a & b| / |a | b|``; 0 where both masks are empty.

    Examples
    --------
    >>> a = np.zeros((1, 2, 4), bool); a[0, :, :2] = True    # 4 pixels
    >>> b = np.zeros((1, 2, 4), bool); b[0, :, 1:3] = True   # 4 pixels, 2 shared
    >>> mask_iou(a, b)  # 2 / (4 + 4 - 2)
    array([[0.33333333]])
    """
    a = as_array("masks_a", masks_a, ndim=3, dtype=bool)
    b = as_array("masks_b", masks_b, ndim=3, dtype=bool)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"masks_a and masks_b must have the same (H, W), got {a.shape[1:]} and {b.shape[1:]}")
    fa = a.reshape(len(a), -1).astype(np.float64)  # (D, H*W)
    fb = b.reshape(len(b), -1).astype(np.float64)  # (G, H*W)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
