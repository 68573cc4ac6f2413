"""Training: the loop every chapter uses, its history, and its checkpoints.

- :func:`fit` trains a model with any ``loss_fn(output, batch)``; returns a :class:`History`.
- :func:`evaluate` averages validation metrics over a loader (:func:`depth_val_metrics` by default).
- :func:`load_model` rebuilds a model from a checkpoint; :func:`load_checkpoint` reads one.
- :func:`log_l1_loss`: the plain log-depth L1 loss of notebook 02.
- ``python -m lib.train --steps 200 --size 64 ...`` trains the course model on the synthetic
  scenes (``--help``), also under ``torchrun --nproc_per_node N``.
"""
from lib.train.checkpoint import atomic_save, load_checkpoint, load_model  # noqa: F401
from lib.train.history import History  # noqa: F401
from lib.train.loop import depth_val_metrics, evaluate, fit  # noqa: F401
from lib.train.recipe import log_l1_loss  # noqa: F401
