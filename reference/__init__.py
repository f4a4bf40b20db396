"""Readable NumPy reference of every FCIS inference stage.

One module per stage (``boxes``, ``anchors``, ``proposals``, ``nms``, ``assemble``, ``joint``, ``paste``,
``voting``, ``detect``) plus a synthetic scene generator (``shapes``) and the oracle network outputs computed
from its ground truth (``oracle``).  Conventions (box coordinates, channel layout, rounding) are written in
``docs/conventions.md``.  This package never imports the accelerated side.
"""
