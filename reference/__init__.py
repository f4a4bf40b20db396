"""Readable NumPy reference of every FCIS stage, inference and training, installed as ``fcis_twin.reference``.

- **Inference**, one module per stage: ``boxes``, ``anchors``, ``proposals``, ``score_maps``, ``nms``,
  ``assemble``, ``joint``, ``paste``, ``voting``, and ``detect`` (the whole graph, every intermediate kept).
  Where a GPU kernel computes one element per thread, the stage also has a loop template with the kernel's names
  (``ps_assemble_loop``, ``paste_masks_loop``, ``mask_voting_loop``).  ``official`` reproduces the official
  code's voted-mask resampling.
- **Data and evaluation**: synthetic scenes (``shapes``), the oracle network outputs made by hand from their
  ground truth (``oracle``), COCO-format sets (``coco``; ``coco_format`` checks them), COCO mask AP
  (``evaluate``) and the SBD mAP^r of the paper (``sds``).
- **Training**: the layers with their backward passes (``layers``), the small network (``network``), anchor,
  proposal and mask targets (``targets``), the losses and OHEM (``losses``), one image's step (``train_step``)
  and the optimiser and run (``train``).
- **Shared checks and files**: ``_checks`` (the argument checks of every stage, with their messages) and
  ``_files`` (JSON read with clear errors, files and folders written all at once).

Conventions (box coordinates, channel layout, rounding, named fields) are written in ``docs/conventions.md``.
This package never imports the accelerated side, nor the command line, benchmark or demo of ``fcis_twin``.
"""
