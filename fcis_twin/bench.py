"""``fcis bench``: the reference against every available backend, on the FCIS-COCO workload and a sweep of sizes.

Each workload is a function of one size parameter returning the inputs of one call.  For every (workload, size,
implementation) the first call is timed on its own (it includes JIT compilation and, for the GPU, module loading)
and reported separately; then ``repeats`` calls are timed and their median is kept.  GPU calls are timed with CUDA
events after a device synchronisation.  Speed-ups are ratios of medians measured in the same run.

Results go to an output folder: ``bench.json`` (every record plus the machine), ``bench.md`` (tables) and
``bench.png`` (log-log time against size, one panel per workload).  The arguments and the folder are checked before
anything is timed, and each report is written under a temporary name and renamed into place when all three are
complete.
"""

import contextlib
import datetime
import functools
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np

from .accelerated._backend import BACKENDS, available_backends, cuda_simulated
from .reference._checks import as_int
from .reference._files import replace_file, writable_folder
from .reference.assemble import ps_assemble as ref_assemble
from .reference.assemble import ps_assemble_backward as ref_assemble_backward
from .reference.detect import FCISConfig
from .reference.detect import detect as ref_detect
from .reference.nms import batched_nms as ref_batched_nms
from .reference.nms import nms as ref_nms
from .reference.paste import paste_masks as ref_paste
from .reference.voting import mask_voting as ref_voting

#: FCIS on COCO: 81 classes, k = 7, P = 21, stride 16, a 600 x 1000 image (feature map 38 x 63).
NUM_CLASSES, K, P, STRIDE, IMAGE = 81, 7, 21, 16, (600, 1000)
FEATURE = (38, 63)


@dataclass
class Record:
    workload: str
    size: int
    implementation: str
    median_s: float
    first_call_s: float
    repeats: int
    speedup: float = float("nan")  # reference median / this median, same run


# --- workloads: size -> (args, kwargs) -------------------------------------------------------------------------


def proposal_boxes(rng, n, image=IMAGE, min_side=16, max_side=400):
    """(n, 4) float32 boxes clustered around a few dozen centres, as proposals are."""
    h, w = image
    centres = rng.uniform([0, 0], [w, h], size=(max(n // 20, 1), 2))
    c = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 8, (n, 2))
    side = rng.uniform(min_side, max_side, (n, 2))
    boxes = np.concatenate([c - side / 2, c + side / 2], axis=1)
    return np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)


def proposal_rois(rng, n):
    return np.concatenate([np.zeros((n, 1), np.float32), proposal_boxes(rng, n)], axis=1)


def assemble_inputs(num_rois, rng):
    maps = rng.standard_normal((1, 2 * NUM_CLASSES * K * K, *FEATURE), dtype=np.float32)
    return (maps, proposal_rois(rng, num_rois)), dict(group_size=K, output_size=P, spatial_scale=1.0 / STRIDE)


def assemble_backward_inputs(num_rois, rng):
    grad = rng.standard_normal((num_rois, 2 * NUM_CLASSES, P, P), dtype=np.float32)
    shape = (1, 2 * NUM_CLASSES * K * K, *FEATURE)
    return (grad, proposal_rois(rng, num_rois), shape), dict(group_size=K, output_size=P, spatial_scale=1.0 / STRIDE)


def assemble_pk_inputs(num_rois, rng):
    """P = k = 7 with ROI corners on the stride grid: where torchvision's ps_roi_pool computes what we compute."""
    (maps, rois), kwargs = assemble_inputs(num_rois, rng)
    rois[:, 1:] = np.round(rois[:, 1:] / STRIDE) * STRIDE
    return (maps, rois), dict(kwargs, output_size=K)


def nms_inputs(num_boxes, rng):
    return (proposal_boxes(rng, num_boxes), rng.random(num_boxes, dtype=np.float32), 0.7), {}


def batched_nms_inputs(num_rois, rng):
    """``num_rois`` boxes, one copy per foreground class, as mask voting's per-class NMS sees them."""
    boxes = proposal_boxes(rng, num_rois)
    scores = rng.random((num_rois, NUM_CLASSES - 1), dtype=np.float32)
    labels = np.broadcast_to(np.arange(1, NUM_CLASSES), scores.shape)
    return (np.repeat(boxes, NUM_CLASSES - 1, axis=0), scores.ravel(), labels.ravel().copy(), 0.3), {}


def paste_inputs(num_masks, rng):
    masks = rng.random((num_masks, P, P), dtype=np.float32)
    return (masks, proposal_boxes(rng, num_masks), IMAGE), {}


def voting_inputs(num_rois, rng):
    """``num_rois`` ROIs (two passes of ``num_rois / 2``) with peaked class probabilities; about 100 detections."""
    boxes = proposal_boxes(rng, num_rois)
    logits = rng.standard_normal((num_rois, NUM_CLASSES)).astype(np.float32)
    logits[np.arange(num_rois), rng.integers(1, NUM_CLASSES, num_rois)] += 6  # one confident class per ROI
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    masks = rng.random((num_rois, NUM_CLASSES, P, P), dtype=np.float32)
    return (boxes, masks, probs, IMAGE), {}


def detect_inputs(num_rois, rng):
    """One FCIS-COCO image's network outputs, random: RPN NMS over 6000 boxes, two passes of ``num_rois`` ROIs on
    the 7938 score maps (k = 7, P = 21), per-class NMS over 80 classes and voting of 100 detections on 600 x 1000.

    The class probabilities come out nearly equal, as an untrained network's, so ``max_detections`` caps voting.
    """
    config = FCISConfig(post_nms_top_n=num_rois)
    a = config.num_anchors
    fg = rng.random((1, a, *FEATURE), dtype=np.float32)
    rpn_prob = np.concatenate([1 - fg, fg], axis=1)  # (1, 2A, Hf, Wf): background first
    rpn_deltas = 0.1 * rng.standard_normal((1, 4 * a, *FEATURE), dtype=np.float32)
    seg_maps = rng.standard_normal((1, 2 * NUM_CLASSES * K * K, *FEATURE), dtype=np.float32)
    bbox_maps = 0.1 * rng.standard_normal((1, 8 * K * K, *FEATURE), dtype=np.float32)
    return (rpn_prob, rpn_deltas, seg_maps, bbox_maps, IMAGE, config), {}


#: The temporary data sets of the ``evaluate`` workload: each removed when this process ends.
_DATA_FOLDERS = []


def evaluate_inputs(num_images, rng):
    """``fcis evaluate --oracle`` on ``num_images`` synthetic images (``fcis data make``'s, seed 0) in a temporary
    folder: reading the images, oracle outputs, inference and the COCO and SBD evaluation are all timed.

    Needs pycocotools (the ``data`` workloads' dependency): without it :func:`run` skips this workload.
    """
    import tempfile

    from .reference.coco import ANNOTATION_FILE, IMAGE_FOLDER, load_coco, make_data

    folder = tempfile.TemporaryDirectory(prefix="fcis_bench_")
    _DATA_FOLDERS.append(folder)  # kept while the set is timed; TemporaryDirectory removes it at exit
    data = os.path.join(folder.name, "set")
    make_data(data, num_images, 0)
    return (load_coco(os.path.join(data, ANNOTATION_FILE), os.path.join(data, IMAGE_FOLDER)),), {}


def _evaluate_reference(coco_set):
    from .demo import evaluate_oracle

    return evaluate_oracle(coco_set, backend="reference")


#: name -> (module, function name, reference, inputs, full sweep, quick sweep, size label); a module named with
#: its package (``fcis_twin.demo``) is imported as it is, the others from ``fcis_twin.accelerated``
WORKLOADS = {
    "assemble": ("assemble", "ps_assemble", ref_assemble, assemble_inputs, (10, 30, 100, 300), (4,), "ROIs"),
    "assemble_backward": ("assemble", "ps_assemble_backward", ref_assemble_backward, assemble_backward_inputs,
                          (10, 30, 100, 300), (4,), "ROIs"),
    "assemble_pk": ("assemble", "ps_assemble", ref_assemble, assemble_pk_inputs, (10, 30, 100, 300), (4,), "ROIs"),
    "nms": ("nms", "nms", ref_nms, nms_inputs, (300, 1000, 3000, 6000), (64,), "boxes"),
    "batched_nms": ("nms", "batched_nms", ref_batched_nms, batched_nms_inputs, (75, 150, 300, 600), (8,),
                    "ROIs x 80 classes"),
    "paste": ("paste", "paste_masks", ref_paste, paste_inputs, (10, 30, 100, 300), (4,), "masks"),
    "voting": ("voting", "mask_voting", ref_voting, voting_inputs, (75, 150, 300, 600), (16,), "ROIs"),
    "detect": ("detect", "detect", ref_detect, detect_inputs, (300,), (4,), "ROIs per pass"),
    "evaluate": ("fcis_twin.demo", "evaluate_oracle", _evaluate_reference, evaluate_inputs, (200,), (2,), "images"),
}

#: The FCIS-COCO point of each workload, the one the speed targets are about.
FCIS_COCO = {"assemble": 300, "assemble_pk": 300, "assemble_backward": 300, "nms": 6000, "batched_nms": 600,
             "paste": 100, "voting": 600, "detect": 300, "evaluate": 200}
#: Timed calls of the reference at most, per workload (default 3): an evaluation of 200 images takes minutes.
REFERENCE_REPEATS = {"evaluate": 1}


# --- timing -----------------------------------------------------------------------------------------------------


def _to_device(args, backend):
    """CuPy copies of the array arguments for the GPU backends, so that transfers are not timed.

    Without CuPy (numba-cuda alone) the NumPy inputs are passed and the transfers are part of the time.
    """
    if backend not in ("cupy", "numba-cuda"):
        return args
    try:
        import cupy
    except ImportError:
        return args
    return tuple(cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in args)


def _timer(on_gpu):
    """A function timing one call: CUDA events on the GPU, perf_counter on the CPU."""
    if not on_gpu:
        def run(fn):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        return run
    from numba import cuda

    def run(fn):
        cuda.synchronize()
        start, stop = cuda.event(), cuda.event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        return cuda.event_elapsed_time(start, stop) / 1e3
    return run


def time_one(fn, repeats, on_gpu=False):
    """(median seconds over ``repeats`` calls, seconds of the first call)."""
    timer = _timer(on_gpu)
    first = timer(fn)
    times = [timer(fn) for _ in range(repeats)]
    return statistics.median(times), first


def implementations(backends):
    """Name -> (callable factory, on_gpu) for the reference, each backend and the torchvision peers."""
    import importlib

    out = {"reference": (lambda name: WORKLOADS[name][2], False)}
    for backend in backends:
        def factory(name, backend=backend):
            module_name = WORKLOADS[name][0]
            if not module_name.startswith("fcis_twin."):
                module_name = f"fcis_twin.accelerated.{module_name}"
            module = importlib.import_module(module_name)
            fn = getattr(module, WORKLOADS[name][1])
            return lambda *a, **kw: fn(*a, **kw, backend=backend)
        out[backend] = (factory, backend in ("cupy", "numba-cuda"))
    return out


def _torchvision_peers():
    """``{name: (torch, torchvision, device, on_gpu)}`` for CPU (and CUDA when present); empty without torchvision."""
    try:
        import torch
        import torchvision
    except Exception:
        return {}
    peers = {"torchvision-cpu": (torch, torchvision, "cpu", False)}
    if torch.cuda.is_available():
        peers["torchvision-cuda"] = (torch, torchvision, "cuda", True)
    return peers


def _peer_call(name, args, kwargs, torch, torchvision, device):
    """A no-argument call of torchvision's counterpart of workload ``name``, or None where it has none."""
    if name == "nms":
        boxes, scores = (torch.as_tensor(a, device=device) for a in args[:2])
        return lambda: torchvision.ops.nms(boxes, scores, args[2])
    if name == "assemble_pk":
        maps, rois = (torch.as_tensor(a, device=device) for a in args)
        return lambda: torchvision.ops.ps_roi_pool(maps, rois, kwargs["output_size"], kwargs["spatial_scale"])
    return None


def speedup(reference_median, median):
    """``reference_median / median``, or NaN when either is missing or zero (a clock too coarse for the call)."""
    return reference_median / median if reference_median and median else float("nan")


def _log(log, rec):
    log(f"{rec.workload:<18} {rec.size:>6} {rec.implementation:<18} median {rec.median_s * 1e3:10.3f} ms  "
        f"first {rec.first_call_s * 1e3:10.1f} ms  x{rec.speedup:8.1f}")


def timeable_backends():
    """The available backends that the benchmark times: under Numba's CUDA simulator ``"numba-cuda"`` is left out
    (the simulator is for tests, not timing)."""
    return tuple(b for b in available_backends() if not (b == "numba-cuda" and cuda_simulated()))


def select_backends(backends=None):
    """The backends to time: every timeable one for None, else those asked for, each checked.

    Parameters
    ----------
    backends : str or sequence of str, optional
        Names from :data:`fcis_twin.accelerated._backend.BACKENDS`; an empty sequence times the reference alone.

    Returns
    -------
    backends : list of str

    Raises
    ------
    ValueError
        A name that is not a backend, or one this machine cannot run or the benchmark does not time (numba-cuda
        under the CUDA simulator): the message names it and lists the timeable backends.
    """
    timeable = timeable_backends()
    if backends is None:
        return list(timeable)
    backends = [backends] if isinstance(backends, str) else list(backends)
    for b in backends:
        if b not in BACKENDS:
            raise ValueError(f"backends: {b!r} is not a backend; the backends are {', '.join(BACKENDS)}")
        if b not in timeable:
            why = ("runs only under Numba's CUDA simulator here, which is not timed" if b in available_backends()
                   else "is not available on this machine")
            raise ValueError(f"backend {b!r} {why}; available for timing: {', '.join(timeable)}")
    return list(dict.fromkeys(backends))


def run(out_dir="bench_out", *, quick=False, repeats=None, backends=None, workloads=None, seed=0, log=print):
    """Run the benchmark; write ``bench.json``, ``bench.md`` and ``bench.png`` to ``out_dir``; return the records.

    Parameters
    ----------
    out_dir : str or path
        Created when missing (with its parents); it must be a folder this process can write.  Checked first.
    quick : bool
        The quick sweeps and one repeat: a smoke run.
    repeats : int >= 1, optional
        Timed calls per point (default 5, quick 1; the reference at most 3).
    backends : str or sequence of str, optional
        As in :func:`select_backends` (default: every timeable backend).
    workloads : str or sequence of str, optional
        Names from :data:`WORKLOADS` (default: all of them).
    seed : int >= 0
        Seed of the generated inputs.
    log : callable
        Called with one line of text per timed point.

    Returns
    -------
    records : list of Record

    Raises
    ------
    ValueError
        A bad argument, an unavailable backend, or an ``out_dir`` that is not a writable folder: all checked
        before anything is timed.
    """
    backends = select_backends(backends)
    if workloads is None:
        names = list(WORKLOADS)
    else:
        names = list(dict.fromkeys([workloads] if isinstance(workloads, str) else workloads))
        unknown = [n for n in names if n not in WORKLOADS]
        if unknown or not names:
            raise ValueError(f"workloads must be among {list(WORKLOADS)}, got {names}")
    repeats = (1 if quick else 5) if repeats is None else as_int("repeats", repeats, low=1)
    seed = as_int("seed", seed, low=0)
    writable_folder("out_dir", out_dir)
    impls = implementations(backends)
    peers = _torchvision_peers()
    records = []
    for name in names:
        sweep = WORKLOADS[name][5] if quick else WORKLOADS[name][4]
        for size in sweep:
            rng = np.random.default_rng(seed)
            try:
                args, kwargs = WORKLOADS[name][3](size, rng)
            except ImportError as exc:  # a workload whose package is missing here (pycocotools) is skipped
                log(f"{name:<18} skipped: {exc}")
                break
            ref_median = None
            for impl, (factory, on_gpu) in impls.items():
                fn = factory(name)
                dev_args = _to_device(args, impl)
                reps = min(repeats, REFERENCE_REPEATS.get(name, 3)) if impl == "reference" else repeats
                median, first = time_one(functools.partial(fn, *dev_args, **kwargs), reps, on_gpu)
                rec = Record(name, size, impl, median, first, reps)
                if impl == "reference":
                    ref_median = median
                rec.speedup = speedup(ref_median, median)
                records.append(rec)
                _log(log, rec)
            for impl, (torch, torchvision, device, on_gpu) in peers.items():
                try:
                    call = _peer_call(name, args, kwargs, torch, torchvision, device)
                    if call is None:
                        continue
                    median, first = time_one(call, repeats, on_gpu)
                except Exception as exc:  # a peer that fails is reported, never fatal
                    log(f"{name:<18} {size:>6} {impl:<18} failed: {exc}")
                    continue
                rec = Record(name, size, impl, median, first, repeats, speedup(ref_median, median))
                records.append(rec)
                _log(log, rec)
    write(records, out_dir, quick=quick)
    return records


# --- reports ----------------------------------------------------------------------------------------------------


def machine():
    """What the figures were measured on."""
    info = {
        "date": datetime.date.today().isoformat(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "backends": list(available_backends()),
    }
    try:
        import numba

        info["numba"] = numba.__version__
    except Exception:
        pass
    if _torchvision_peers():  # the peers' versions, where they ran
        import torch
        import torchvision

        info["torch"], info["torchvision"] = torch.__version__, torchvision.__version__
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        info["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
        info["cupy"] = cupy.__version__
    except Exception:
        pass
    return info


def markdown(records, info):
    """Tables of median times and speed-ups, one per workload."""
    lines = [f"Measured {info['date']} on {info['platform']}, {info['cpu_count']} CPUs"
             + (f", GPU {info['gpu']}" if "gpu" in info else ", no GPU") + ".", ""]
    for name in dict.fromkeys(r.workload for r in records):
        rows = [r for r in records if r.workload == name]
        impls = list(dict.fromkeys(r.implementation for r in rows))
        label = WORKLOADS[name][6]
        lines += [f"### {name}", "", f"| {label} | " + " | ".join(impls) + " |",
                  "|---:|" + "---:|" * len(impls)]
        for size in dict.fromkeys(r.size for r in rows):
            cells = []
            for impl in impls:
                r = next((r for r in rows if r.size == size and r.implementation == impl), None)
                cells.append("" if r is None else f"{r.median_s * 1e3:.3f} ms" +
                             ("" if impl == "reference" else f" (x{r.speedup:.1f})"))
            lines.append(f"| {size} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(records, path):
    """Log-log median time against size, one panel per workload, one line per implementation."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    names = list(dict.fromkeys(r.workload for r in records))
    cols = min(len(names), 3)
    fig = Figure(figsize=(5 * cols, 3.8 * -(-len(names) // cols)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(-(-len(names) // cols), cols)).ravel()
    for ax, name in zip(axes, names, strict=False):  # the last row may hold spare axes, hidden below
        rows = [r for r in records if r.workload == name]
        for impl in dict.fromkeys(r.implementation for r in rows):
            pts = sorted((r.size, r.median_s) for r in rows if r.implementation == impl)
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], marker="o", label=impl)
        ax.set_title(name)
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: minor ones collide
        ax.set_xlabel(WORKLOADS[name][6])
        ax.set_ylabel("median time (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    fig.savefig(path, dpi=100, format="png")


def write(records, out_dir, *, quick):
    """Write ``bench.json``, ``bench.md`` and ``bench.png`` to ``out_dir`` (created when missing).

    The three are written under temporary names in ``out_dir`` and renamed into place only when all three are
    done; a failure leaves the previous reports as they were.  ``bench.json`` is strict JSON: a speed-up that is
    not defined (NaN) is written as ``null``.
    """
    out_dir = writable_folder("out_dir", out_dir)
    info = machine()
    with contextlib.ExitStack() as stack:
        temps = [stack.enter_context(replace_file("out_dir", out_dir / name))
                 for name in ("bench.json", "bench.md", "bench.png")]
        rows = [{k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in asdict(r).items()}
                for r in records]  # strict JSON: an undefined speed-up is null, not NaN
        data = {"machine": info, "quick": quick, "records": rows}
        temps[0].write_text(json.dumps(data, indent=1, allow_nan=False))
        temps[1].write_text(markdown(records, info) + "\n")
        plot(records, temps[2])
