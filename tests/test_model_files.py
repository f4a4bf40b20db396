"""Model files and checkpoints: every loader reads only what the record's network calls for, each entry's size bounded
before it is read, checks every field of the record and every stored dtype, and a resumed run checks its whole
checkpoint before it trains; each refusal is a ValueError naming the argument and the path."""

import io
import json
import re
import tracemalloc
import zipfile
from dataclasses import asdict

import numpy as np
import pytest
from numpy.lib import format as npy_format

from fcis_twin.reference.network import NetworkConfig, inference_config, init_params
from fcis_twin.reference.shapes import make_dataset
from fcis_twin.reference.train import TrainConfig, load_model, save_model, train
from fcis_twin.reference.train_step import LossConfig

SMALL = NetworkConfig(group_size=2, output_size=6, backbone=((4, 2, 1), (4, 2, 1)), rpn_channels=4, head_channels=4,
                      norm_groups=2)
PARAMS = init_params(SMALL, np.random.default_rng(0))


def _npy(array=None, *, header=None, data=b""):
    """The bytes of an ``.npy`` entry: ``array`` saved, or ``header`` (any claim) followed by ``data``."""
    buffer = io.BytesIO()
    if array is not None:
        np.save(buffer, array, allow_pickle=False)
    else:
        npy_format.write_array_header_1_0(buffer, header)
        buffer.write(data)
    return buffer.getvalue()


def _meta(network=None, **changes):
    """A model file's record of ``network`` (default SMALL's), with ``changes`` (None deletes a key)."""
    meta = {"format": "fcis-twin-model", "version": 1, "network": SMALL.to_dict() if network is None else network}
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not None}


def _archive(path, meta=None, params=PARAMS, *, record=None, more=()):
    """Write a model file by hand: the record (``meta``, or the raw JSON text ``record``), ``params`` and the raw
    entries ``more`` (name -> bytes)."""
    text = record if record is not None else json.dumps(_meta() if meta is None else meta)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.npy", _npy(np.array(text)))
        for name, value in params.items():
            archive.writestr(f"params/{name}.npy", _npy(value))
        for name, data in dict(more).items():
            archive.writestr(name, data)
    return path


def _refused(path, match, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        load_model(path, **kwargs)
    return str(info.value)


# --- row 1: what is read, and how much ------------------------------------------------------------------------


def test_entries_the_format_does_not_know_are_refused(tmp_path):
    """An extra top-level entry, a parameter the network lacks and state of one: each refused, naming the entry."""
    zeros = _npy(np.zeros(3, np.float32))
    for name, entry in (("junk.npy", "junk"), ("params/extra.npy", "params/extra"), ("state/extra.npy", "state/extra")):
        path = _archive(tmp_path / "m.npz", more={name: zeros})
        _refused(path, f"'{entry}'")


def test_entry_sizes_are_bounded_before_anything_is_read(tmp_path):
    """Entries whose headers claim 1 GiB (an unknown one and a parameter), and a parameter followed by 8 MB more,
    are refused with under 16 MB allocated."""
    claim = _npy(header={"descr": "<f8", "fortran_order": False, "shape": (2**27,)}, data=bytes(64))
    weight = PARAMS["conv1.weight"]
    cases = [({"more": {"junk.npy": claim}}, "'junk'"),
             ({"more": {"params/conv1.weight.npy": claim},
               "params": {k: v for k, v in PARAMS.items() if k != "conv1.weight"}},
              r"'params/conv1.weight' has shape \(134217728,\), expected \(4, 3, 3, 3\)"),
             ({"more": {"params/conv1.weight.npy": _npy(weight) + bytes(8 * 2**20)},
               "params": {k: v for k, v in PARAMS.items() if k != "conv1.weight"}},
              r"'params/conv1.weight' is \d+ bytes long, more than")]
    for kwargs, match in cases:
        path = _archive(tmp_path / "m.npz", **kwargs)
        tracemalloc.start()
        try:
            _refused(path, match)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 * 2**20, (match, peak)


def test_a_record_longer_than_the_limit_is_neither_written_nor_read(tmp_path, monkeypatch):
    """With MAX_RECORD_CHARS lowered to 300, save_model refuses a longer record and load_model a file that has one."""
    from fcis_twin.reference import model_files

    path = _archive(tmp_path / "m.npz", _meta(note="x" * 400))
    monkeypatch.setattr(model_files, "MAX_RECORD_CHARS", 300)
    _refused(path, "record is longer than 300 characters")
    with pytest.raises(ValueError, match="more than a model file may hold"):
        save_model(tmp_path / "n.npz", PARAMS, SMALL, extra={"note": "x" * 400})


# --- row 6: records that are no model file's ------------------------------------------------------------------


@pytest.mark.parametrize("record, match", [
    (json.dumps({"format": "fcis-twin-model", "version": 1}), "no 'network'"),
    (json.dumps(_meta({**SMALL.to_dict(), "backbone": [[4, 0, 1], [4, 2, 1]]})), r"backbone\[0\] stride"),
    (json.dumps(_meta({**SMALL.to_dict(), "backbone": [[4, 2, float("inf")], [4, 2, 1]]})), r"backbone\[0\] dilation"),
    ('{"format": "fcis-twin-model", "version": 1, "x": ' + "[" * 100000 + "]" * 100000 + "}", "nested too deeply"),
    (json.dumps(_meta("a network")), "network record must be a dict"),
    ("[1, 2]", "not an FCIS model file"),
    ("{not json", "not valid JSON"),
], ids=["no-network", "stride-0", "infinite-dilation", "deep", "network-text", "list", "not-json"])
def test_a_record_that_is_no_model_files_is_a_value_error(tmp_path, record, match):
    """A record without a network, with a stride of 0 or an infinite dilation, nested 100,000 deep, or not a JSON
    object: a ValueError that says the file is no model file."""
    message = _refused(_archive(tmp_path / "m.npz", record=record), match)
    assert "m.npz' is not" in message


def test_the_cli_turns_a_bad_record_into_exit_code_2(tmp_path, capsys):
    """`fcis evaluate --weights FILE` with a record without a network: exit code 2 and one message, no traceback."""
    from fcis_twin.cli import main

    path = _archive(tmp_path / "m.npz", record=json.dumps({"format": "fcis-twin-model", "version": 1}))
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--data", str(tmp_path), "--weights", str(path)])
    assert info.value.code == 2 and "no 'network'" in capsys.readouterr().err


# --- row 7: stored dtypes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["complex64", "datetime64[s]", "bool", "int32", "float16"])
def test_weights_stored_as_another_dtype_than_float32_or_float64_are_refused(tmp_path, dtype):
    """A parameter stored as complex, datetime, bool, integer or float16: refused, naming the entry and the dtype."""
    params = {**PARAMS, "seg.bias": np.zeros(PARAMS["seg.bias"].shape, dtype)}
    _refused(_archive(tmp_path / "m.npz", params=params), f"'params/seg.bias' is stored as {re.escape(dtype)}")


def test_float64_weights_load_as_float32_and_non_finite_ones_are_refused(tmp_path):
    """float64 weights load as float32 equal to their rounding; a NaN, or a float64 beyond float32's range, is
    refused."""
    params = {k: v.astype(np.float64) for k, v in PARAMS.items()}
    loaded = load_model(_archive(tmp_path / "m.npz", params=params))[0]
    assert all(loaded[k].dtype == np.float32 and np.array_equal(loaded[k], PARAMS[k]) for k in PARAMS)
    for bad in (np.nan, 1e300):
        params["seg.bias"] = np.full(PARAMS["seg.bias"].shape, bad)
        _refused(_archive(tmp_path / "m.npz", params=params), "'params/seg.bias' holds NaN")


# --- row 8: every field of the record --------------------------------------------------------------------------


def _network(**changes):
    values = {**SMALL.to_dict(), **changes}
    return {k: v for k, v in values.items() if v is not None}


@pytest.mark.parametrize("meta, match", [
    (_meta(_network(num_classes=None)), r"misses \['num_classes'\]"),
    (_meta(_network(output_size=None)), r"misses \['output_size'\]"),
    (_meta(_network(extra=1)), "unknown"),
    (_meta(_network(backbone=[[4, 2.7, 1], [4, 2, 1]])), r"backbone\[0\] stride must be an int, got 2.7"),
    (_meta(_network(backbone=[[4, 2.0, 1], [4, 2, 1]])), r"backbone\[0\] stride must be an int"),
    (_meta(_network(backbone=[[4, 2], [4, 2, 1]])), r"backbone\[0\] must hold 3"),
    (_meta(_network(num_classes=True)), "num_classes must be an int, got True"),
    (_meta(_network(output_size=7)), r"output_size \(7\) must be a multiple of group_size \(2\)"),
    (_meta(_network(output_size=300)), r"output_size must be in \[1, 64\], got 300"),
    (_meta(_network(num_classes=1000, output_size=24)), "assembled values per ROI"),
    (_meta(_network(rpn_channels=10**6)), r"rpn_channels must be in \[1, 4096\]"),
    (_meta(_network(anchor_scales=[])), "anchor_scales must hold at least one"),
    (_meta(_network(anchor_ratios=[1.0, -2.0])), r"anchor_ratios\[1\] must be positive"),
    (_meta(_network(input_channels=1)), "input_channels must be 3"),
    (_meta(_network(norm_groups=3)), "norm_groups"),
    (_meta(version=99), "format version is 99"),
    (_meta(version="1"), "format version is '1'"),
    (_meta(version=None), "format version is None"),
    (_meta(iteration=-1), "'iteration' must be an int >= 0"),
], ids=lambda v: None if isinstance(v, dict) else v[:24])
def test_every_field_of_the_record_is_checked(tmp_path, meta, match):
    """Missing, unknown, non-int or out-of-range network fields (stride 2.7, output size 7 with k = 2, 300), an
    unknown format version and a negative iteration are refused; nothing takes a default or is rounded."""
    _refused(_archive(tmp_path / "m.npz", meta), match)


def test_the_network_configuration_checks_its_fields():
    """NetworkConfig refuses an output size that is no multiple of k and a float stride, and turns lists into
    tuples."""
    with pytest.raises(ValueError, match=r"output_size \(20\) must be a multiple of group_size \(3\)"):
        NetworkConfig(output_size=20)
    with pytest.raises(TypeError, match=r"backbone\[0\] stride must be an int"):
        NetworkConfig(backbone=((16, 2.7, 1),))
    as_lists = NetworkConfig(**{**SMALL.to_dict()})
    assert as_lists == SMALL and isinstance(as_lists.backbone[0], tuple)


def test_a_network_beyond_the_parameter_limit_is_refused(tmp_path, monkeypatch):
    """With MAX_PARAMETERS lowered below the small network's count, its file is refused before its weights are read."""
    from fcis_twin.reference import model_files

    path = _archive(tmp_path / "m.npz")
    monkeypatch.setattr(model_files, "MAX_PARAMETERS", 100)
    _refused(path, "parameters, more than 100")


# --- row 13: checkpoints ---------------------------------------------------------------------------------------


LOSSES = LossConfig(ohem_rois=16, rpn_batch=32)
INFERENCE = inference_config(SMALL, post_nms_top_n=16)
CONFIG = TrainConfig(iterations=4, warmup_iterations=1, checkpoint_every=2)
#: What train writes into a checkpoint of this run (train's record, built as it builds it).
RECORD = json.loads(json.dumps({"train": asdict(CONFIG), "losses": asdict(LOSSES),
                                "proposals": INFERENCE.proposal_settings, "seed": 0}))


def _log(n):
    parts = dict.fromkeys(("rpn_cls", "rpn_box", "cls", "seg", "box", "total"), 0.5)
    return [{"iteration": t, "lr": 0.01, "seconds": 0.1, **parts, "foreground": 1, "kept": 2, "kept_foreground": 1}
            for t in range(n)]


def _resume(out, *, state="zeros", **changes):
    """Write ``out/checkpoint.npz`` of iteration 2 (``changes`` to its record, None deletes a key; ``state`` its
    optimiser state, default zeros) and resume from it, checking that no iteration ran before train returned or
    raised."""
    velocity = {k: np.zeros_like(v) for k, v in PARAMS.items()} if isinstance(state, str) else state
    extra = {**RECORD, "iteration": 2, "log": _log(2), **changes}
    save_model(out / "checkpoint.npz", PARAMS, SMALL, extra={k: v for k, v in extra.items() if v is not None},
               arrays=velocity)
    scenes = make_dataset(1, seed=0, image_size=(48, 48), max_objects=2, size_range=(12, 30))
    calls = []
    try:
        return train(scenes, out, network=SMALL, config=CONFIG, losses=LOSSES, inference=INFERENCE, seed=0,
                     resume=True, on_iteration=lambda t, _: calls.append(t))
    finally:
        assert calls == [], "trained before the checkpoint was checked"


@pytest.mark.parametrize("case, match", [
    ({"log": None, "iteration": None}, "iteration must be an int in \\[0, 4\\], got None"),
    ({"log": None}, r"log must be a list of 2 records \(one per iteration done\), got NoneType"),
    ({"iteration": 10**6}, r"iteration must be an int in \[0, 4\], got 1000000"),
    ({"log": _log(1)}, "log must be a list of 2 records"),
    ({"log": [_log(2)[0], {"iteration": 1}]}, "log record 1 must have the fields"),
    ({"log": [_log(2)[1], _log(2)[1]]}, "log record 0's 'iteration' must be 0"),
    ({"state": None}, "holds no optimiser state"),
    ({"state": {k: np.zeros(v.shape, np.float16) for k, v in PARAMS.items()}}, "stored as float16"),
    ({"state": {k: np.zeros(v.shape, np.float64) for k, v in PARAMS.items()}}, "stored as float64, its parameter"),
    ({"seed": 3}, "another configuration or seed"),
], ids=["no-iteration", "no-log", "iteration-1e6", "short-log", "log-fields", "log-order", "no-state", "float16",
        "float64", "seed"])
def test_a_checkpoint_is_checked_whole_before_a_resumed_run_trains(tmp_path, case, match):
    """A checkpoint without an iteration or log, of iteration 10^6, whose log does not match its iteration, without
    optimiser state or with state of another dtype: a ValueError naming the checkpoint, before any iteration."""
    with pytest.raises(ValueError, match=match) as info:
        _resume(tmp_path, **case)
    assert str(info.value).startswith("resume checkpoint '") and "checkpoint.npz'" in str(info.value)


def test_a_checkpoint_of_the_last_iteration_writes_its_weights_as_the_model(tmp_path):
    """A valid checkpoint of iteration 4 of 4: no iteration runs, the model holds its weights, the log is its own."""
    params, log = _resume(tmp_path, iteration=4, log=_log(4))
    assert log == _log(4) and all(np.array_equal(params[k], PARAMS[k]) for k in PARAMS)
    assert load_model(tmp_path / "model.npz", SMALL)[2]["iteration"] == 4


# --- row 16: messages that name the argument and the path ------------------------------------------------------


def test_files_that_are_no_npz_archive_get_messages_naming_the_argument_and_the_path(tmp_path):
    """A .npy, a text file and a folder: each a ValueError with the caller's argument name and the path; a text file
    never suggests allow_pickle."""
    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "t.txt").write_text("hello")
    (tmp_path / "d.npz").mkdir()
    cases = [("a.npy", "not a readable model file \\(.npz\\)"), ("t.txt", "not a readable model file \\(.npz\\)"),
             ("d.npz", "is a folder, not a model file")]
    for name, match in cases:
        message = _refused(tmp_path / name, match, name="--weights")
        assert message.startswith(f"--weights '{tmp_path / name}'") and "allow_pickle" not in message
    assert _refused(tmp_path / "t.txt", "t.txt").startswith("path '")
