"""Readable NumPy reference of every FCIS inference stage, installed as ``fcis_twin.reference``.

One module per stage (``boxes``, ``anchors``, ``proposals``, ``score_maps``, ``nms``, ``assemble``, ``joint``,
``paste``, ``voting``, ``detect``) plus a synthetic scene generator (``shapes``), the oracle network outputs computed
from its ground truth (``oracle``), COCO-format data (``coco``) and evaluation (``evaluate``).  Where a GPU kernel
computes one element per thread, the stage also has a loop template with the kernel's names (``ps_assemble_loop``,
``paste_masks_loop``, ``mask_voting_loop``).  Conventions (box coordinates, channel layout, rounding, named fields)
are written in ``docs/conventions.md``.  This package never imports the accelerated side, nor the command line,
benchmark or demo of ``fcis_twin``.
"""
