"""Training: the schedule, model files, resuming, and a smoke run whose loss goes down."""

import json

import numpy as np
import pytest

from fcis_twin.reference.network import NetworkConfig, inference_config, init_params
from fcis_twin.reference.shapes import make_dataset
from fcis_twin.reference.train import TrainConfig, learning_rate, load_model, save_model, train
from fcis_twin.reference.train_step import LossConfig, training_step

SMALL = NetworkConfig(group_size=2, output_size=8, backbone=((8, 1, 1), (12, 2, 1), (16, 2, 1), (16, 1, 2)),
                      rpn_channels=16, head_channels=16, norm_groups=4)
FAST = LossConfig(ohem_rois=32, rpn_batch=64)
#: The small network's inference settings with 32 proposals: what the tests' training steps share with inference.
FEW = inference_config(SMALL, post_nms_top_n=32)
RUN = dict(network=SMALL, losses=FAST, inference=FEW)


def _step(params, scene, rng):
    return training_step(params, scene, SMALL, FAST, rng=rng, inference=FEW)


def _scenes(n, seed=0):
    return make_dataset(n, seed=seed, image_size=(48, 48), max_objects=2, size_range=(12, 30))


def test_learning_rate_warms_up_then_decays():
    """Linear warm-up from a tenth, then x0.1 at 70% and at 90% of the run."""
    cfg = TrainConfig(iterations=100, learning_rate=1.0, warmup_iterations=10, warmup_factor=0.1)
    assert [round(learning_rate(t, cfg), 6) for t in (0, 5, 10, 69, 70, 89, 90)] == \
        [0.1, 0.55, 1.0, 1.0, 0.1, 0.1, 0.01]


def test_model_file_round_trip_and_refusals(tmp_path):
    """What is saved loads back; a missing, truncated or foreign file, or one of another configuration, is refused."""
    params = init_params(SMALL, np.random.default_rng(0))
    path = tmp_path / "m.npz"
    save_model(path, params, SMALL, extra={"note": "x"})
    loaded, network, meta, state = load_model(path, SMALL)
    assert network == SMALL and meta["note"] == "x" and state == {}
    assert all(np.array_equal(loaded[k], params[k]) for k in params)
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="another network configuration"):
        load_model(path, NetworkConfig())
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a readable model file"):
        load_model(tmp_path / "cut.npz")
    save_model(tmp_path / "short.npz", {k: v for k, v in params.items() if k != "seg.bias"}, SMALL)
    with pytest.raises(ValueError, match="does not fit its configuration"):
        load_model(tmp_path / "short.npz")
    save_model(tmp_path / "wide.npz", {**params, "seg.bias": np.zeros(7, np.float32)}, SMALL)
    with pytest.raises(ValueError, match="does not fit its configuration"):
        load_model(tmp_path / "wide.npz")
    np.savez(tmp_path / "other.npz", meta=np.array(json.dumps({"format": "something else"})))
    with pytest.raises(ValueError, match="not an FCIS model file"):
        load_model(tmp_path / "other.npz")


def test_smoke_training_lowers_the_loss(tmp_path):
    """Eighty iterations on four small images: the loss of those images, each step taken with the same anchor
    sample, falls below 60% of what the initial weights give (about 40% on two sets of seeds)."""
    scenes = _scenes(4)
    cfg = TrainConfig(iterations=80, learning_rate=0.01, warmup_iterations=5, checkpoint_every=1000)
    trained, log = train(scenes, tmp_path, config=cfg, **RUN, seed=0)
    initial = init_params(SMALL, np.random.default_rng([0, 0]))  # train's own initialisation for seed 0

    def mean_loss(params):
        return np.mean([_step(params, s, np.random.default_rng(i)).losses["total"]
                        for i, s in enumerate(scenes)])

    assert mean_loss(trained) < 0.6 * mean_loss(initial)
    assert (tmp_path / "model.npz").is_file() and len(json.loads((tmp_path / "log.json").read_text())) == 80
    assert all(0 < r["kept"] <= cfg.images_per_step * FAST.ohem_rois and 0 <= r["foreground"] for r in log)


def test_worker_processes_give_the_weights_of_one_process(tmp_path):
    """Three iterations of two images each: worked on by two processes, the run ends bit for bit where the same run
    in this process ends; and the log's loss parts are the means over the two images."""
    from fcis_twin.workers import Workers

    scenes = _scenes(6)
    cfg = TrainConfig(iterations=3, images_per_step=2, warmup_iterations=1, checkpoint_every=1000)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    alone, log = train(scenes, tmp_path / "a", config=cfg, **RUN, seed=2)
    with Workers(2) as workers:
        shared, _ = train(scenes, tmp_path / "b", config=cfg, **RUN, seed=2,
                          map_images=workers.map)
    assert all(np.array_equal(shared[k], alone[k]) for k in alone)
    initial = init_params(SMALL, np.random.default_rng([2, 0]))
    first = [_step(initial, scenes[i], np.random.default_rng([2, 1, 0, i])) for i in (0, 1)]
    assert log[0]["total"] == pytest.approx((first[0].losses["total"] + first[1].losses["total"]) / 2, rel=1e-12)
    assert log[0]["kept"] == sum(int(s.kept.sum()) for s in first)


def test_workers_report_errors_and_deaths():
    """An exception in a worker is raised in the parent; a worker that dies is a RuntimeError, not a hang."""
    import math
    import os

    from fcis_twin.workers import Workers

    with Workers(1) as workers:
        assert workers.map(math.sqrt, [4.0, 9.0]) == [2.0, 3.0]
        with pytest.raises(ValueError, match="math domain error"):
            workers.map(math.sqrt, [-1.0])
        with pytest.raises(RuntimeError, match="training worker 0 stopped \\(exit code 3\\)"):
            workers.map(os._exit, [3])


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    """Stopped after its checkpoint at 6 of 9 iterations and resumed, a run ends bit for bit where an uninterrupted
    one ends."""
    scenes = _scenes(3)
    cfg = TrainConfig(iterations=9, warmup_iterations=2, checkpoint_every=3)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    whole, _ = train(scenes, tmp_path / "a", config=cfg, **RUN, seed=5)
    calls = []

    def stop_after_six(t, _):
        calls.append(t)
        if t == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(scenes, tmp_path / "b", config=cfg, **RUN, seed=5, on_iteration=stop_after_six)
    assert load_model(tmp_path / "b" / "checkpoint.npz")[2]["iteration"] == 6
    resumed, log = train(scenes, tmp_path / "b", config=cfg, **RUN, seed=5, resume=True)
    assert [r["iteration"] for r in log] == list(range(9))
    assert all(np.array_equal(resumed[k], whole[k]) for k in whole)
    with pytest.raises(ValueError, match="another configuration or seed"):
        train(scenes, tmp_path / "b", config=cfg, **RUN, seed=6, resume=True)


def test_maps_figure_draws_learned_and_oracle_maps_of_one_class():
    """The docs' figure of learned maps: the image, then a k x k mosaic each of the learned and of the oracle's inside
    and outside maps (with a colour bar each); the class defaults to that of the largest instance."""
    from fcis_twin.reference.shapes import make_scene
    from fcis_twin.viz import maps_figure

    scene = make_scene(4, image_shape=(48, 64), max_objects=2, size_range=(12, 30))
    fig = maps_figure(init_params(SMALL, np.random.default_rng(0)), SMALL, scene)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert titles[0] == "image and ground truth" and len(titles) == 5 and len(fig.axes) == 9
    assert titles[1].startswith("learned: '") and titles[4].endswith("outside maps")
    hf, wf = 48 // SMALL.stride, 64 // SMALL.stride
    assert fig.axes[1].get_images()[0].get_array().shape == (2 * hf + 1, 2 * wf + 1)  # k = 2 tiles, 1-pixel gaps


def test_a_pretrained_run_starts_from_the_pretrained_backbone_and_resumes(tmp_path, monkeypatch):
    """With ``pretraining``, the checkpoint at iteration 0 holds the pretrained backbone (the pretraining's own
    weights, bit for bit) and heads drawn as without it; a run stopped in its first iteration resumes from that
    checkpoint, without pretraining again, and ends where an uninterrupted one ends; a checkpoint of a run without
    pretraining is refused."""
    from fcis_twin.reference.pretrain import backbone_names, pretrain, pretraining_images

    scenes, images = _scenes(3), pretraining_images(4, seed=9)
    cfg, pre = TrainConfig(iterations=3, warmup_iterations=1), TrainConfig(iterations=2, images_per_step=2)
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    whole, _ = train(scenes, tmp_path / "a", config=cfg, **RUN, seed=2, pretraining=pre, pretrain_images=images)
    assert [r["iteration"] for r in json.loads((tmp_path / "a" / "pretrain_log.json").read_text())] == [0, 1]

    def stop(t, _):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(scenes, tmp_path / "b", config=cfg, **RUN, seed=2, pretraining=pre, pretrain_images=images,
              on_iteration=stop)
    start, _, meta = load_model(tmp_path / "b" / "checkpoint.npz")[:3]
    assert meta["iteration"] == 0 and meta["pretraining"]["iterations"] == 2
    pretrained, _ = pretrain(images, network=SMALL, config=pre, seed=2)
    drawn = init_params(SMALL, np.random.default_rng([2, 0]))
    for name, value in start.items():
        np.testing.assert_array_equal(value, pretrained[name] if name in backbone_names(SMALL) else drawn[name])

    def no_pretraining(*args, **kwargs):
        raise AssertionError("a resumed run pretrained again")

    import fcis_twin.reference.train as train_module

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "pretrain", no_pretraining)
        resumed, _ = train(scenes, tmp_path / "b", config=cfg, **RUN, seed=2, pretraining=pre,
                           pretrain_images=images, resume=True)
    assert all(np.array_equal(resumed[k], whole[k]) for k in whole)
    with pytest.raises(ValueError, match="another configuration or seed"):
        train(scenes, tmp_path / "b", config=cfg, **RUN, seed=2, resume=True)
    with pytest.raises(ValueError, match="pretraining needs its pretrain_images"):
        train(scenes, tmp_path / "c", config=cfg, **RUN, pretraining=pre)
