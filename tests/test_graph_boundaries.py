"""The inference graph at its seams: the second pass's ROIs, min_drop_size at its exact value, and which backend
``fcis_twin.accelerated.detect`` binds."""

import functools

import numpy as np
import pytest

from fcis_twin.accelerated import assemble as accelerated_assemble
from fcis_twin.accelerated import available_backends
from fcis_twin.accelerated import detect as accelerated_detect
from fcis_twin.accelerated.joint import joint_forward as accelerated_joint_forward
from fcis_twin.accelerated.nms import nms as accelerated_nms
from fcis_twin.accelerated.voting import mask_voting as accelerated_mask_voting
from fcis_twin.reference.assemble import ps_assemble
from fcis_twin.reference.detect import REFERENCE_KERNELS, FCISConfig, Kernels, detect

# One anchor per cell (stride 8, side 16) on a 4 x 4 feature map, cell (y, x) anchor
# [8x - 4, 8y - 4, 8x + 12, 8y + 12]; k = 1, P = 2, C = 2 classes; the RPN keeps one proposal.
CONFIG = FCISConfig(stride=8, group_size=1, output_size=2, anchor_ratios=(1.0,), anchor_scales=(2,),
                    post_nms_top_n=1)


def _outputs(box_deltas=(0, 0, 0, 0)):
    """Network outputs whose one proposal is the anchor of cell (1, 1), [4, 4, 20, 20] (fg 0.9, the others 0.1, no
    RPN deltas), seg maps that vary across the map, and box maps whose foreground slot is ``box_deltas``
    everywhere."""
    fg = np.full((4, 4), 0.1, np.float32)  # (y, x)
    fg[1, 1] = 0.9
    rpn_prob = np.stack([1 - fg, fg])[None]  # (1, 2, 4, 4): background, foreground
    rpn_deltas = np.zeros((1, 4, 4, 4), np.float32)
    seg_maps = np.arange(64, dtype=np.float32).reshape(1, 4, 4, 4) / 8  # (1, 2 C k^2, 4, 4), no two cells alike
    bbox_maps = np.zeros((1, 8, 4, 4), np.float32)
    bbox_maps[0, 4:] = np.float32(box_deltas)[:, None, None]  # channel reg * 4 + coord, reg = 1
    return rpn_prob, rpn_deltas, seg_maps, bbox_maps


def test_second_pass_assembles_the_regressed_boxes():
    """The second assembly pass reads the seg maps in the regressed boxes, not in the proposals again; the box maps are
    read in the proposals."""
    calls = []
    outputs = _outputs(box_deltas=(2.5, 0, 0, 0))
    box_fg = outputs[3][:, 4:]  # the box maps' foreground slot, which alone is assembled

    def recording(maps, rois, **kwargs):
        calls.append(("bbox" if np.array_equal(maps, box_fg) else "seg", rois[:, 1:].copy()))
        return ps_assemble(maps, rois, **kwargs)

    stages = detect(*outputs, (32, 32), CONFIG, kernels=REFERENCE_KERNELS._replace(ps_assemble=recording))
    np.testing.assert_array_equal(stages.proposals, [[4, 4, 20, 20]])
    # dx = 2.5 * HEAD_STDS 0.2 = 0.5 of the width 16 (0.5 in float32): 8 to the right
    np.testing.assert_array_equal(stages.regressed, [[12, 4, 28, 20]])
    assert [name for name, _ in calls] == ["seg", "bbox", "seg"]
    np.testing.assert_array_equal(calls[0][1], stages.proposals)
    np.testing.assert_array_equal(calls[1][1], stages.proposals)
    np.testing.assert_array_equal(calls[2][1], stages.regressed)
    np.testing.assert_array_equal(stages.second.boxes, stages.regressed)
    rois = np.concatenate([[[0]], stages.regressed], axis=1).astype(np.float32)
    again = ps_assemble(outputs[2], rois, group_size=1, output_size=2, spatial_scale=1 / 8)
    np.testing.assert_array_equal(stages.second.assembled, again)
    assert not np.array_equal(stages.second.assembled, stages.first.assembled)  # the shift shows in the maps


@pytest.mark.parametrize("image_shape, min_drop_size, voting", [
    ((24, 18), 14, [0, 1]),    # [4, 4, 20, 20] clipped to [4, 4, 18, 20]: width 14 = min_drop_size, kept (>=)
    ((24, 18), 14.5, []),      # width 14 < 14.5: dropped
    ((18, 24), 14, [0, 1]),    # clipped to [4, 4, 20, 18]: height 14, kept
    ((18, 24), 14.5, []),
])
def test_min_drop_size_keeps_a_box_exactly_that_size(image_shape, min_drop_size, voting):
    """An ROI of either pass whose narrower side equals min_drop_size goes to mask voting; a smaller one does not."""
    cfg = FCISConfig(**{**CONFIG.__dict__, "min_drop_size": min_drop_size})
    stages = detect(*_outputs(), image_shape, cfg)  # no box deltas: the second pass's box is the proposal
    np.testing.assert_array_equal(stages.second.boxes, stages.first.boxes)
    np.testing.assert_array_equal(stages.voting_rois, voting)
    assert (len(stages.detections) > 0) == bool(voting)  # class 1 scores 0.5 on uniform maps


# --- which backend the accelerated graph binds -----------------------------------------------------------------

BACKENDS = [b for b in ("numba-cpu", "numba-cuda") if b in available_backends()]  # the simulator counts


def _bound_backends(kernels, monkeypatch):
    """The backend each of ``kernels``' four functions runs: the partials' keyword (each binding the accelerated
    module's function), and for the assembly closure the backend it hands the module's dispatcher."""
    assert isinstance(kernels, Kernels) and kernels is not REFERENCE_KERNELS
    found = {}
    for name, function in (("nms", accelerated_nms), ("joint_forward", accelerated_joint_forward),
                           ("mask_voting", accelerated_mask_voting)):
        bound = getattr(kernels, name)
        assert isinstance(bound, functools.partial) and bound.func is function, name
        found[name] = bound.keywords["backend"]
    seen = []
    monkeypatch.setattr(accelerated_assemble, "_assemble", lambda *args: seen.append(args[5]))
    kernels.ps_assemble(np.zeros((1, 4, 4, 4), np.float32), np.float32([[0, 0, 0, 8, 8]]), group_size=1,
                        output_size=2, spatial_scale=1 / 8)
    found["ps_assemble"] = seen[0]
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernels_bind_the_named_backend(backend, monkeypatch):
    """kernels(backend) binds every stage to that backend's code, not the reference's nor another backend's."""
    bound = _bound_backends(accelerated_detect.kernels(backend), monkeypatch)
    assert bound == dict.fromkeys(("nms", "joint_forward", "mask_voting", "ps_assemble"), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_accelerated_detect_runs_the_graph_with_that_backend(backend, monkeypatch):
    """accelerated.detect(..., backend=b) runs the reference graph with kernels(b), its arguments passed through."""
    calls = []
    monkeypatch.setattr(accelerated_detect, "reference_detect", lambda *args, **kwargs: calls.append((args, kwargs)))
    outputs = _outputs()
    accelerated_detect.detect(*outputs, (32, 32), CONFIG, backend=backend)
    (args, kwargs), = calls
    assert all(a is b for a, b in zip(args, (*outputs, (32, 32), CONFIG), strict=True))
    bound = _bound_backends(kwargs["kernels"], monkeypatch)
    assert bound == dict.fromkeys(("nms", "joint_forward", "mask_voting", "ps_assemble"), backend)


def test_a_kernels_record_reused_on_buffers_refilled_in_place_assembles_the_new_maps():
    """kernels(b) keeps nothing between calls: refilling the score-map buffer in place and assembling again gives the
    new maps' assembly, not a copy kept from the previous image (many ROIs, so numba-cpu takes its channels-last
    path, whose copy of the maps reusing_layouts would keep)."""
    bound = accelerated_detect.kernels("numba-cpu")
    maps = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    rois = np.float32([[0, x, y, x + 4, y + 4] for x in range(4) for y in range(4)] * 8)  # 128 ROIs
    geometry = dict(group_size=1, output_size=4, spatial_scale=1.0)
    bound.ps_assemble(maps, rois, **geometry)
    maps[...] = np.random.default_rng(1).standard_normal(maps.shape)  # the next image, in the same buffer
    np.testing.assert_allclose(bound.ps_assemble(maps, rois, **geometry), ps_assemble(maps, rois, **geometry),
                               rtol=1e-6, atol=1e-6)
