"""Distribution strategies for `train` and `finetune`: TensorFlow's own, chosen by name.

`auto` is one device. `mirrored` is `tf.distribute.MirroredStrategy` over every local GPU (or,
without GPUs, every logical CPU: one unless the CPU was split, as the tests do).
`multiworker` is `tf.distribute.MultiWorkerMirroredStrategy`, its cluster read from
`TF_CONFIG`; every worker runs the same stage, and only the chief writes the outputs.
Batch sizes in params are per replica: the global batch is that times the replicas.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer.runtime.devices import device_description
from transfer.runtime.errors import UserError


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy whose `reduce` accepts what Keras 3's `fit` gives it.

    Keras passes a nested batch (keras-team/keras#20585) and scalar metrics with `axis=0`
    (tensorflow/tensorflow#72388); both fail in the stock strategy. Each value is reduced on
    its own, over the replicas only when it is a scalar. Drop this class once Keras is fixed.
    """

    def reduce(self, reduce_op, value, axis):  # noqa: ANN001, ANN201 (TensorFlow's signature)
        """Reduce every value of a nest across replicas (and `axis`, if the value has one)."""
        def one(v):  # noqa: ANN001, ANN202
            rank = self.experimental_local_results(v)[0].shape.rank
            return super(_MultiWorkerMirroredStrategy, self).reduce(
                reduce_op, v, axis=axis if rank else None)
        return tf.nest.map_structure(one, value)


def strategy(name: str, key: str) -> tf.distribute.Strategy:
    """The strategy called `name` by param `key` (`train.strategy` or `finetune.strategy`);
    says which device the stage trains on."""
    print(f"{key.split('.')[0]}: on {device_description()}")
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UserError(f"{key}=multiworker needs the TF_CONFIG environment variable "
                            "(the cluster and this worker's task; see docs/speed.md, 'Scaling up')")
        return _MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def as_dataset(batches: keras.utils.PyDataset) -> tf.data.Dataset:
    """`batches` as a tf.data pipeline of the same batches, in the PyDataset's own order.

    tf.distribute splits each batch of such a pipeline between the replicas, so any number of
    them trains on the same global batches. (Given the PyDataset itself, it deals whole batches
    out to the replicas, and `fit` reshuffles the batch order on one device.) Its length is
    declared, so `fit` knows the steps of an epoch.
    """
    def epoch() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of `batches`, then a new order for the next."""
        for i in range(len(batches)):
            yield batches[i]
        batches.on_epoch_end()

    x, y = batches[0]
    signature = (tf.TensorSpec((None, *x.shape[1:]), x.dtype),
                 tf.TensorSpec((None,), y.dtype))
    return (tf.data.Dataset.from_generator(epoch, output_signature=signature)
            .unbatch().batch(len(x))
            .apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(1))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True unless this process is a multi-worker cluster's task other than its chief (the
    `chief` task, or else worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type in (None, "chief"):
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def global_batch(strategy: tf.distribute.Strategy, per_replica: int) -> int:
    """The batch `fit` takes: a per-replica batch size (as in params) times the replicas."""
    return per_replica * strategy.num_replicas_in_sync


def tensorboard_dir(stage: str) -> Path:
    """An empty directory for this run's TensorBoard logs of `stage`: `logs/<run>/<stage>`.

    `<run>` is the experiment's name under `dvc exp run`, else `workspace`. The root is the
    main repository (DVC sets `DVC_ROOT` to it even for queued experiments, which run in
    temporary copies), so one `tensorboard --logdir logs` compares every run. These logs are a
    view across runs, not an output DVC versions: DVCLive's files are.
    """
    path = Path(os.environ.get("DVC_ROOT", ".")) / "logs" / os.environ.get(
        "DVC_EXP_NAME", "workspace") / stage
    shutil.rmtree(path, ignore_errors=True)  # a rerun replaces its run's curves
    return path


def chief_tensorboard_dir(strategy: tf.distribute.Strategy, stage: str) -> Path | None:
    """The chief's TensorBoard directory for `stage` (`tensorboard_dir`); None for the
    other workers, which log nothing."""
    return tensorboard_dir(stage) if is_chief(strategy) else None


@contextlib.contextmanager
def output_root(strategy: tf.distribute.Strategy) -> Iterator[Path]:
    """Where this process writes its outputs: the workspace for the chief, a temporary
    directory (thrown away) for the other workers, which must train in step with it."""
    if is_chief(strategy):
        yield Path(".")
    else:
        with tempfile.TemporaryDirectory(prefix="worker-") as tmp:
            yield Path(tmp)
