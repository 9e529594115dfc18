"""What training writes, and reading it back safely: resume state, finite checks.

Beside the classic per-epoch ``mask_rcnn_<name>_NNNN.h5`` checkpoints (weights only, read
by classic code), a run directory holds ``train_state.npz``: every model weight, the
optimizer's variables (momentum or Adam moments, iteration count, learning rate), the
epoch and step reached, the data generator's seed and the list of ``train()`` calls
(stages: layers, learning rate, target epoch) of the run. It is written atomically (a
temporary file, then ``os.replace``), at the start of every stage, every
``TRAIN_STATE_STEPS`` steps (default: at the end of every epoch) and at every epoch end;
never from non-finite weights.

Running the same script again after a crash (``kill -9`` included) then resumes: the
``train()`` call of a stage already finished in the interrupted run is skipped, the call
of the stage in flight restores the state and continues at the saved step, with the
optimizer state, the epoch and the data order of the interrupted run, in its log
directory. A run whose last stage finished is not resumed.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import zipfile

import h5py
import keras
import numpy as np

from mrcnn.distribute import is_chief

__all__ = ["STATE_FILE", "NonFiniteLossError", "StopOnNonFiniteLoss", "TrainingRun",
           "StateSaver", "non_finite_weights", "checkpoint_problem", "config_fingerprint"]

logger = logging.getLogger(__name__)

STATE_FILE = "train_state.npz"
STATE_VERSION = 1
# A run folder is <name><timestamp>: datetime's format and the regex that reads it.
RUN_TIMESTAMP = "%Y%m%dT%H%M"
RUN_TIMESTAMP_RE = r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})"


def run_name(config) -> str:
    """The lower-case NAME that a config's run folders and checkpoints carry."""
    return (config.NAME or "mrcnn").lower()


def checkpoint_file(name: str, epoch: int | str) -> str:
    """``mask_rcnn_<name>_NNNN.h5``, the checkpoint of 1-based `epoch` (or a template
    when `epoch` is a format field such as "{epoch:04d}")."""
    number = epoch if isinstance(epoch, str) else f"{int(epoch):04d}"
    return f"mask_rcnn_{name}_{number}.h5"


def training_runs(model_dir: str, name: str) -> list[str]:
    """The run folders ``<name>YYYYmmddTHHMM`` of `model_dir`, oldest first.

    Only exact matches count: the runs of a config named "shapes_small" are not
    runs of "shapes".
    """
    if not os.path.isdir(model_dir):
        return []
    pattern = re.compile(re.escape(name) + RUN_TIMESTAMP_RE)
    return sorted(entry.path for entry in os.scandir(model_dir)
                  if entry.is_dir() and pattern.fullmatch(entry.name))


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss (or weights); nothing was saved from it."""


def non_finite_weights(model: keras.Model) -> list[str]:
    """Paths of the model's weights that hold a NaN or an infinity."""
    return [w.path for w in model.weights if not np.isfinite(w.numpy()).all()]


def checkpoint_problem(path: str) -> str | None:
    """Why a weight file cannot be resumed from, or None when it is sound.

    Reads every array: a file that is partial, truncated, not HDF5, or holds a NaN or
    an infinity has a problem.
    """
    def bad_dataset(name, item):
        if isinstance(item, h5py.Dataset) and item.dtype.kind == "f":
            if not np.isfinite(item[()]).all():
                return name
        return None

    try:
        with h5py.File(path, "r") as handle:
            bad = handle.visititems(bad_dataset)
    except (OSError, KeyError, RuntimeError) as err:
        return f"unreadable ({err})"
    return f"non-finite values in {bad}" if bad else None


def config_fingerprint(config) -> str:
    """The config's settings as JSON: equal for the same config, in any process.

    Objects with ``get_config`` (loss factories' results, Keras losses) count by class and
    config, so that a changed hyper-parameter is a changed config; functions by name,
    ``functools.partial`` objects by function and arguments, other callable objects by
    class and attributes.
    """
    def plain(value):
        if hasattr(value, "get_config") and not isinstance(value, type):
            kind = type(value)
            return {"class": f"{kind.__module__}.{kind.__qualname__}",
                    "config": value.get_config()}
        if isinstance(value, functools.partial):
            return {"partial": value.func, "args": list(value.args),
                    "keywords": dict(value.keywords)}
        if callable(value) and hasattr(value, "__qualname__"):  # functions, classes
            return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
        if callable(value):
            # A callable instance: its class and attributes (its repr holds an address).
            kind = type(value)
            return {"class": f"{kind.__module__}.{kind.__qualname__}",
                    "state": dict(vars(value)) if hasattr(value, "__dict__") else None}
        if isinstance(value, np.ndarray):
            return value.tolist()
        return repr(value)

    return json.dumps(config.to_dict(), default=plain, sort_keys=True)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises NonFiniteLossError at the first step whose loss is NaN or infinite.

    Raising (rather than ``stop_training``) ends ``fit`` before any epoch-end callback,
    so no checkpoint is written from the weights that step produced.

    Args:
        steps_per_epoch: to number the step in the whole run.
        first_step: the step of the epoch that the first batch is (when resuming).
    """

    def __init__(self, steps_per_epoch: int, first_step: int = 0):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.first_step = first_step
        self._epoch = 0
        self._previous = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._previous = epoch, {}

    def on_epoch_end(self, epoch, logs=None):
        self.first_step = 0

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        step = self.first_step + batch + 1
        # The logs hold this epoch's running means; the step's own value is recovered
        # from two consecutive means.
        count = batch + 1
        last = {name: count * float(value) - (count - 1) * self._previous.get(name, 0.0)
                for name, value in logs.items() if name.endswith("loss")}
        self._previous = {name: float(logs[name]) for name in last}
        if all(math.isfinite(value) for value in last.values()):
            return
        values = ", ".join(f"{name} {value:.4g}" for name, value in last.items())
        raise NonFiniteLossError(
            f"Training stopped: non-finite loss at step {step} of epoch {self._epoch + 1} "
            f"(step {self._epoch * self.steps_per_epoch + step} of the run). Last values: "
            f"{values}. No checkpoint was written from these weights. Lower the learning "
            "rate (or GRADIENT_CLIP_NORM), check the data, then resume from the last "
            "checkpoint.")


def _write_npz(path: str, arrays: dict) -> None:
    partial = path + ".partial"
    with open(partial, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


class TrainingRun:
    """One call of ``MaskRCNN.train``, inside a run that may be resumed.

    Args:
        model: the MaskRCNN being trained.
        stage: ``{"layers", "learning_rate", "epochs"}`` of this call.
        resume: look for an interrupted run to continue.

    Attributes:
        action: "new" (train as asked), "resume" (continue the stage in flight) or
            "skip" (the interrupted run finished this stage already).
        epoch, step: where training starts: epochs done, then batches done in the next.
        seed: the training data generator's seed (None: a fresh one).
    """

    def __init__(self, model, stage: dict, resume: bool = True):
        self.model = model
        self.stage = stage
        self.action, self.epoch, self.step, self.seed = "new", model.epoch, 0, None
        self.stages = [stage]
        self._index = 0
        self._optimizer_values = None
        found = self._find_interrupted() if resume else None
        if found:
            self._take_over(*found)

    # ------------------------------------------------------------ finding

    def _find_interrupted(self):
        """(run directory, meta, arrays) of the run to continue, or None."""
        model = self.model
        runs = training_runs(model.model_dir, run_name(model.config))
        # The log directory set by load_weights(...) first, else the latest run only: an
        # older interrupted run behind a newer one is history, not work in flight.
        for run_dir in dict.fromkeys([model.log_dir] + runs[-1:]):
            path = os.path.join(run_dir, STATE_FILE)
            if not os.path.isfile(path):
                continue
            try:
                with np.load(path) as data:
                    meta = json.loads(str(data["meta"]))
                    if not meta.get("running"):
                        continue
                    arrays = {key: data[key] for key in data.files if key != "meta"}
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
                logger.warning("Ignoring the unreadable training state %s: %s", path, err)
                continue
            if meta.get("version") != STATE_VERSION:
                continue
            if meta["config"] != config_fingerprint(model.config):
                logger.warning("Not resuming the interrupted run %s: its config differs "
                               "from this one (pass resume=False to silence this)", run_dir)
                continue
            return run_dir, meta, arrays
        return None

    def _take_over(self, run_dir: str, meta: dict, arrays: dict) -> None:
        stages = meta["stages"]
        if self.stage not in stages:
            logger.warning("Not resuming the interrupted run %s: this train() call %s is none "
                           "of its stages %s", run_dir, self.stage, stages)
            return
        index = stages.index(self.stage)
        running = meta["stage"]
        model = self.model
        # The process can die after the stage's last state save and before finish():
        # that stage is done, and its weights are the saved ones.
        finished = (index == running and meta["step"] == 0
                    and meta["epoch"] >= self.stage["epochs"])
        if index < running:
            self.action, self.epoch = "skip", self.stage["epochs"]
        elif index == running:
            self.action = "skip" if finished else "resume"
            self.epoch, self.step, self.seed = meta["epoch"], meta["step"], meta["seed"]
            weights = [arrays[f"w{i}"] for i in range(meta["num_weights"])]
            _assign(model.keras_model.weights, weights, run_dir)
            if meta["optimizer_stage"] == index and not finished:
                self._optimizer_values = [arrays[f"o{i}"] for i in range(meta["num_optimizer"])]
        else:
            return
        self.stages, self._index = stages, index
        # set_log_dir reads the run directory and the epoch from a checkpoint path.
        model.set_log_dir(os.path.join(run_dir, checkpoint_file(run_name(model.config),
                                                                self.epoch)))
        if finished:
            # A later train() call of this process continues the same run.
            model._run_stages = (model.log_dir, stages[:index + 1])

    # ------------------------------------------------------------ saving

    @property
    def path(self) -> str:
        return os.path.join(self.model.log_dir, STATE_FILE)

    def restore_optimizer(self, keras_model: keras.Model) -> None:
        """Builds the compiled optimizer and puts back its saved state, if any."""
        if self._optimizer_values is None:
            return
        optimizer = keras_model.optimizer
        # Under a strategy the optimizer's slots are created beside the mirrored weights,
        # which TensorFlow allows only inside its scope.
        with self.model.strategy.scope():
            optimizer.build(keras_model.trainable_variables)
        _assign(optimizer.variables, self._optimizer_values, self.path)
        self._optimizer_values = None

    def save(self, keras_model: keras.Model, epoch: int, step: int, seed: int,
             running: bool = True) -> bool:
        """Writes the state: weights, optimizer, position. False if weights are not finite.

        Under a multi-worker strategy only the chief writes (the other workers hold the
        same weights); the others write nothing and return True.
        """
        if not is_chief(self.model.strategy):
            return True
        # A finished run keeps only its record: its weights are in the .h5 checkpoints.
        weights = [w.numpy() for w in keras_model.weights] if running else []
        if not all(np.isfinite(w).all() for w in weights):
            logger.error("Training state not saved at epoch %d step %d: the weights hold NaN "
                         "or infinite values", epoch, step)
            return False
        optimizer = keras_model.optimizer
        optimizer_values = ([v.numpy() for v in optimizer.variables]
                            if running and optimizer is not None and optimizer.built else [])
        meta = {"version": STATE_VERSION, "config": config_fingerprint(self.model.config),
                "stages": self.stages, "stage": self._index, "running": running,
                "epoch": int(epoch), "step": int(step), "seed": int(seed),
                "num_weights": len(weights), "num_optimizer": len(optimizer_values),
                "optimizer_stage": self._index if optimizer_values else None}
        arrays = {**{f"w{i}": w for i, w in enumerate(weights)},
                  **{f"o{i}": v for i, v in enumerate(optimizer_values)}}
        os.makedirs(self.model.log_dir, exist_ok=True)
        _write_npz(self.path, {"meta": np.array(json.dumps(meta)), **arrays})
        return True

    def begin(self, keras_model: keras.Model, seed: int) -> None:
        """Records this call as the stage in flight (before its first step)."""
        if self.action == "new":
            self.stages = self._previous_stages() + [self.stage]
            self._index = len(self.stages) - 1
        self.seed = seed
        self.save(keras_model, self.epoch, self.step, seed)

    def _previous_stages(self) -> list:
        """The stages this process already ran in this log directory (a multi-stage script)."""
        previous = getattr(self.model, "_run_stages", None)
        if previous and previous[0] == self.model.log_dir:
            return previous[1]
        return []

    def finish(self, keras_model: keras.Model) -> None:
        """Marks the run as not in flight; a later train() call of this process adds the
        next stage to it."""
        self.model._run_stages = (self.model.log_dir, self.stages[:self._index + 1])
        self.save(keras_model, self.stage["epochs"], 0, self.seed, running=False)


class StateSaver(keras.callbacks.Callback):
    """Saves the TrainingRun's state every ``every_steps`` steps and at each epoch end.

    Args:
        run: the TrainingRun.
        every_steps: steps between saves within an epoch; None or 0: epoch ends only.
        first_step: the step of the epoch that the first batch is (when resuming).
    """

    def __init__(self, run: TrainingRun, every_steps: int | None, first_step: int = 0):
        super().__init__()
        self.run = run
        self.every_steps = every_steps or 0
        self.first_step = first_step
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = self.first_step + batch + 1
        # The epoch's last step is saved by on_epoch_end, after validation and checkpoint.
        last = batch + 1 == self.params.get("steps")
        if self.every_steps and step % self.every_steps == 0 and not last:
            self.run.save(self.model, self._epoch, step, self.run.seed)

    def on_epoch_end(self, epoch, logs=None):
        self.first_step = 0
        self.run.save(self.model, epoch + 1, 0, self.run.seed)


def _assign(variables, values, source: str) -> None:
    """Assigns all values or none; a mismatch raises naming `source`."""
    if len(variables) != len(values):
        problem = f"{len(values)} saved arrays for {len(variables)} variables"
    else:
        problem = next((f"{v.path} has shape {tuple(v.shape)}, the saved array "
                        f"{np.shape(x)}" for v, x in zip(variables, values)
                        if tuple(v.shape) != np.shape(x)), None)
    if problem:
        raise ValueError(
            f"The training state in {source} does not fit this model ({problem}). Was the "
            "model changed? Pass resume=False to train() to start a new run.")
    for variable, value in zip(variables, values):
        variable.assign(value)
