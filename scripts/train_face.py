#!/usr/bin/env python3
"""Train the facial-expression model on FER-2013 faces with FER+ soft labels; export int8 TFLite.

Seeded, resumable (a checkpoint per epoch in --out), with a progress bar. Writes into --out:
``face_expression_float.tflite``, ``face_expression_int8.tflite`` and ``metrics.json``; with
``--install`` it also copies the int8 model to ``models_tflite/``.

Validation for model selection and the logit adjustment is a seeded 10 % slice of the Training
rows; PublicTest is only ever used to report the final numbers.

Needs the optional ``[train]`` extra (TensorFlow). The shipped model: 40 epochs, a warm restart
onto an 80-epoch schedule, then a second onto 110 epochs with the weights averaged from epoch 89 on
(about 4 h in all on 2 CPU cores)::

    nohup python scripts/train_face.py --data ../shared/data --out runs/face --tta \
        > runs/face.log 2>&1 &
    python scripts/train_face.py --out runs/face --resume --epochs 80 --tta
    python scripts/train_face.py --out runs/face --resume --epochs 110 --tta --average-from 0.8 --install
    python scripts/train_face.py --out runs/face --resume ...   # continue after an interruption

``--teacher FILE --distill A`` mixes a trained model's outputs on the training faces into the targets
(a share A of each), for a smaller network learning from a larger one.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.inference.face import FACE_INPUT_SIZE  # noqa: E402
from edge.labels import LABELS, NUM_LABELS, fer2013_to_canon, ferplus_majority, ferplus_soft_targets  # noqa: E402
from scripts.metrics import classification_report  # noqa: E402
from scripts.training import (  # noqa: E402
    RunFolder,
    WeightAverage,
    export_float_and_int8,
    install,
    lr_at,
    recompute_batchnorm,
    run_parser,
    start_tensorflow,
)

FACE_STEM = "face_expression"       # <stem>_float.tflite, <stem>_int8.tflite


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = run_parser(__doc__, data_holds="fer2013/fer2013_trainval.npz", out="runs/face", epochs=40,
                   batch=128, lr=3e-3, width=32)
    p.add_argument("--tta", action="store_true",
                   help="export a model that averages the face and its mirror image (about 2x the compute)")
    p.add_argument("--arch", choices=("compact", "resnet"), default="compact",
                   help="compact: a 7-convolution VGG-style net at about 40 M multiply-adds with per-face "
                        "contrast normalisation in the graph (the shipped model from v2); resnet: the "
                        "first model (about 100 M multiply-adds per view)")
    p.add_argument("--room", action="store_true",
                   help="bedside augmentation: rolls to +-30 degrees, dim and IR-like grey faces, "
                        "stronger blur and a covered lower face, on top of the camera augmentation")
    p.add_argument("--teacher", type=Path, default=None,
                   help="a face .tflite (e.g. models_tflite/face_expression_int8.tflite) whose outputs on the "
                        "training faces are mixed into the targets: distillation")
    p.add_argument("--distill", type=float, default=0.5,
                   help="with --teacher: the teacher's share of each target (the FER+ votes have the rest)")
    p.add_argument("--average-from", type=float, default=0.0,
                   help="also keep the mean of the weights after each epoch from this share of --epochs on "
                        "(0 = off; batch-norm statistics re-measured on the training faces); exported "
                        "instead of the best epoch when it scores better on validation")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------- data

def load_face_data(data_dir: Path, seed: int, limit: int = 0) -> dict[str, np.ndarray]:
    path = data_dir / "fer2013" / "fer2013_trainval.npz"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found; pass --data pointing at the shared data folder")
    d = np.load(path)
    images, usage, exact = d["images"], d["usage"], d["pixels_exact"]
    soft, usable = ferplus_soft_targets(d["ferplus_votes"])
    majority, _ = ferplus_majority(d["ferplus_votes"])
    fer_canon = fer2013_to_canon(d["labels"])
    keep = exact & usable
    train_all = np.flatnonzero(keep & (usage == 0))
    rng = np.random.default_rng(seed)
    # stratified 10 % validation slice of Training (by FER+ majority)
    val_idx, tr_idx = [], []
    for c in range(NUM_LABELS):
        rows = train_all[majority[train_all] == c]
        rows = rng.permutation(rows)
        n_val = max(1, int(round(0.1 * len(rows))))
        val_idx.append(rows[:n_val])
        tr_idx.append(rows[n_val:])
    tr = rng.permutation(np.concatenate(tr_idx))
    va = np.sort(np.concatenate(val_idx))
    te = np.flatnonzero(keep & (usage == 1))
    if limit:
        tr, va, te = tr[:limit], va[: max(limit // 4, 8)], te[: max(limit // 4, 8)]
    out = {}
    for name, idx in (("train", tr), ("val", va), ("test", te)):
        out[f"{name}_x"] = images[idx]
        out[f"{name}_soft"] = soft[idx]
        out[f"{name}_y"] = majority[idx]
        out[f"{name}_fer"] = fer_canon[idx]
    # original FER-2013 labels on every PublicTest row with exact pixels (for the side-by-side report)
    te_fer = np.flatnonzero(exact & (usage == 1))
    if limit:
        te_fer = te_fer[: max(limit // 4, 8)]
    out["test_fer_all_x"] = images[te_fer]
    out["test_fer_all_y"] = fer_canon[te_fer]
    return out


# ---------------------------------------------------------------------------------------- model

def build_resnet(tf, width: int = 32):
    """A compact VGG/ResNet-style CNN for 48x48 grayscale faces (input float in [0, 1])."""
    layers = tf.keras.layers
    reg = tf.keras.regularizers.l2(1e-4)

    def conv_bn(x, ch, stride=1):
        x = layers.Conv2D(ch, 3, strides=stride, padding="same", use_bias=False, kernel_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    def block(x, ch):
        shortcut = x
        if x.shape[-1] != ch:
            shortcut = layers.Conv2D(ch, 1, use_bias=False, kernel_regularizer=reg)(x)
            shortcut = layers.BatchNormalization()(shortcut)
        y = conv_bn(x, ch)
        y = layers.Conv2D(ch, 3, padding="same", use_bias=False, kernel_regularizer=reg)(y)
        y = layers.BatchNormalization()(y)
        return layers.ReLU()(layers.Add()([shortcut, y]))

    inp = layers.Input((FACE_INPUT_SIZE, FACE_INPUT_SIZE, 1), name="face")
    x = conv_bn(inp, width)                # 48x48
    x = conv_bn(x, width, stride=2)        # 24x24
    x = block(x, width * 2)
    x = layers.MaxPooling2D()(x)           # 12x12
    x = block(x, width * 4)
    x = layers.MaxPooling2D()(x)           # 6x6
    x = block(x, width * 8)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.4)(x)
    logits = layers.Dense(NUM_LABELS, name="logits", kernel_regularizer=reg, dtype="float32")(x)
    probs = layers.Softmax(name="probs", dtype="float32")(logits)
    return tf.keras.Model(inp, probs, name="face_expression")


@functools.cache
def per_face_standardize(tf):
    """A Keras layer: each face to zero mean and unit variance (a dim or washed-out crop looks
    like a well-lit one to the layers after it). Part of the graph, so the exported model does it.
    The 1e-3 floor on the variance keeps the sensor noise of a black frame from being blown up."""

    @tf.keras.utils.register_keras_serializable(package="medtrack")
    class PerFaceStandardize(tf.keras.layers.Layer):
        def call(self, x):
            mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
            var = tf.reduce_mean(tf.square(x - mean), axis=[1, 2, 3], keepdims=True)
            return (x - mean) * tf.math.rsqrt(var + 1e-3)

    return PerFaceStandardize


def build_compact(tf, width: int = 32):
    """Seven 3x3 convolutions (VGG style, batch norm, ReLU) for 48x48 grey faces, input float in
    [0, 1]: one at 48x48, a stride-2 one and another at 24x24, two at 12x12, two at 6x6, global
    average pooling. Plain convolutions rather than depthwise-separable ones: they train faster on
    a CPU and int8 kernels for them are the best tuned on ARM and x86. About 40 M multiply-adds."""
    layers = tf.keras.layers
    reg = tf.keras.regularizers.l2(5e-5)
    w = (width, width * 5 // 4, width * 5 // 2, width * 5)        # 32 -> 32, 40, 80, 160

    def conv_bn(x, ch, stride=1):
        x = layers.Conv2D(ch, 3, strides=stride, padding="same", use_bias=False, kernel_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inp = layers.Input((FACE_INPUT_SIZE, FACE_INPUT_SIZE, 1), name="face")
    x = per_face_standardize(tf)(name="standardize")(inp)
    x = conv_bn(x, w[0])                   # 48x48
    x = conv_bn(x, w[1], stride=2)         # 24x24
    x = conv_bn(x, w[1])
    x = layers.MaxPooling2D()(x)           # 12x12
    x = conv_bn(x, w[2])
    x = conv_bn(x, w[2])
    x = layers.MaxPooling2D()(x)           # 6x6
    x = conv_bn(x, w[3])
    x = conv_bn(x, w[3])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    logits = layers.Dense(NUM_LABELS, name="logits", kernel_regularizer=reg, dtype="float32")(x)
    probs = layers.Softmax(name="probs", dtype="float32")(logits)
    return tf.keras.Model(inp, probs, name="face_expression")


def build_model(tf, width: int = 32, arch: str = "compact"):
    return (build_compact if arch == "compact" else build_resnet)(tf, width)


def with_flip_average(tf, base):
    """Wrap a model so it returns the mean of its outputs on the image and on its mirror image."""
    layers = tf.keras.layers
    inp = layers.Input(base.input_shape[1:], name="face")
    mirrored = layers.Lambda(lambda t: tf.reverse(t, axis=[2]), name="mirror")(inp)
    out = layers.Average(name="probs_tta")([base(inp), base(mirrored)])
    return tf.keras.Model(inp, out, name="face_expression_tta")


def make_augmenter(tf, seed: int, room: bool = False):
    """Camera-like augmentation on a batch of float [0,1] images [B,48,48,1]; ``room`` adds what a
    bedside camera sees: larger rolls, dim and IR-like grey faces, blur, a covered lower face."""
    layers = tf.keras.layers
    geo = tf.keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed, dtype="float32"),
        # about +-15 degrees (+-30 with room: what eye alignment may leave on a turned head)
        layers.RandomRotation(0.083 if room else 0.04, fill_mode="reflect", seed=seed + 1, dtype="float32"),
        layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed + 2, dtype="float32"),
        layers.RandomZoom((-0.12, 0.12), fill_mode="reflect", seed=seed + 3, dtype="float32"),
    ])
    blur_k = tf.constant([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])[:, :, None, None] / 16.0
    g = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
    wide_blur_k = tf.constant(np.outer(g, g)[:, :, None, None] / np.outer(g, g).sum(), tf.float32)

    def room_conditions(x, b):
        """Night and bed: dim (with the sensor noise of a dark frame), IR-like flat grey, a
        defocused camera, a blanket or a mask over the lower face."""
        def some(share):
            return tf.random.uniform((b, 1, 1, 1)) < share
        dim = x * tf.random.uniform((b, 1, 1, 1), 0.08, 0.5)
        dim = dim + tf.random.normal(tf.shape(x)) * tf.random.uniform((b, 1, 1, 1), 0.0, 0.02)
        x = tf.where(some(0.25), dim, x)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        flat = (x - mean) * tf.random.uniform((b, 1, 1, 1), 0.25, 0.6) + mean
        x = tf.where(some(0.1), flat, x)
        x = tf.where(some(0.15), tf.nn.conv2d(x, wide_blur_k, 1, "SAME"), x)
        size = FACE_INPUT_SIZE
        top = tf.random.uniform((b, 1, 1, 1), 0.5, 0.75) * size
        rows = tf.reshape(tf.range(size, dtype=tf.float32), (1, size, 1, 1))
        cover = tf.random.uniform((b, 1, 1, 1), 0.0, 1.0) + tf.random.normal(tf.shape(x)) * 0.03
        return tf.where((rows >= top) & some(0.1), cover, x)

    def augment(x):
        b = tf.shape(x)[0]
        x = geo(x, training=True)
        # photometric: gamma, contrast, brightness
        gamma = tf.exp(tf.random.uniform((b, 1, 1, 1), -0.4, 0.4))
        x = tf.pow(tf.clip_by_value(x, 1e-4, 1.0), gamma)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * tf.random.uniform((b, 1, 1, 1), 0.6, 1.4) + mean
        x = x + tf.random.uniform((b, 1, 1, 1), -0.15, 0.15)
        # blur a third of the images
        blurred = tf.nn.conv2d(x, blur_k, 1, "SAME")
        x = tf.where(tf.random.uniform((b, 1, 1, 1)) < 0.33, blurred, x)
        # sensor noise
        x = x + tf.random.normal(tf.shape(x)) * tf.random.uniform((b, 1, 1, 1), 0.0, 0.04)
        if room:
            x = room_conditions(x, b)
        # partial occlusion (a random rectangle, a hand or a mask) on 30 % of images
        size = FACE_INPUT_SIZE
        cy = tf.random.uniform((b, 1, 1, 1), 0, size)
        cx = tf.random.uniform((b, 1, 1, 1), 0, size)
        hh = tf.random.uniform((b, 1, 1, 1), 4, 14)
        hw = tf.random.uniform((b, 1, 1, 1), 4, 14)
        yy = tf.reshape(tf.range(size, dtype=tf.float32), (1, size, 1, 1))
        xx = tf.reshape(tf.range(size, dtype=tf.float32), (1, 1, size, 1))
        box = (tf.abs(yy - cy) < hh) & (tf.abs(xx - cx) < hw)
        apply = tf.random.uniform((b, 1, 1, 1)) < 0.3
        fill = tf.random.uniform((b, 1, 1, 1), 0.0, 1.0)
        x = tf.where(box & apply, fill, x)
        return tf.clip_by_value(x, 0.0, 1.0)

    return augment


# ---------------------------------------------------------------------------------------- train

def teacher_probs(model_path: Path, faces: np.ndarray, cache: Path) -> np.ndarray:
    """A teacher model's probabilities on the (unaugmented) training faces, through edge's runtime;
    cached beside the checkpoints so a resumed run distils from the same targets."""
    from edge.inference.face import FaceClassifier

    if cache.is_file():
        probs = np.load(cache)
        if probs.shape == (len(faces), NUM_LABELS):
            return probs
    probs = np.asarray(FaceClassifier(model_path).classify_batch(faces), np.float32)
    probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-6)   # int8 outputs sum to about 1
    np.save(cache, probs)
    return probs


def predict(model, x: np.ndarray, batch: int = 512) -> np.ndarray:
    return model.predict(x.astype(np.float32)[..., None] / 255.0, batch_size=batch, verbose=0)


def class_prior(y: np.ndarray) -> np.ndarray:
    """Class frequencies of the training labels (add-one smoothed): the prior of the logit adjustment."""
    prior = np.bincount(y, minlength=NUM_LABELS) + 1.0
    return prior / prior.sum()


def adjusted_predictions(probs: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """Classes by ``argmax(log probs - tau*log prior)``: tau > 0 favours the rare classes."""
    return (np.log(np.maximum(probs, 1e-8)) - tau * np.log(prior)).argmax(1)


def choose_logit_adjustment(probs: np.ndarray, y: np.ndarray, prior: np.ndarray) -> tuple[float, dict]:
    """Pick tau for logits - tau*log(prior) on validation: best balanced accuracy while keeping
    accuracy within 1 point of the unadjusted model."""
    base = classification_report(y, adjusted_predictions(probs, prior, 0.0))
    best_tau, best = 0.0, base
    for tau in np.arange(0.05, 1.51, 0.05):
        rep = classification_report(y, adjusted_predictions(probs, prior, tau))
        if rep["accuracy"] >= base["accuracy"] - 0.01 and rep["balanced_accuracy"] > best["balanced_accuracy"]:
            best_tau, best = float(round(tau, 2)), rep
    return best_tau, best


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tf = start_tensorflow(args)

    data = load_face_data(Path(args.data), args.seed, args.limit)
    n_train = len(data["train_x"])
    print(f"train {n_train}  val {len(data['val_x'])}  test {len(data['test_x'])}", flush=True)

    # class weights: inverse square root of frequency of the soft targets, mean 1
    freq = data["train_soft"].mean(axis=0) + 1e-6
    class_w = (1.0 / np.sqrt(freq))
    class_w = class_w / (class_w * freq).sum()
    prior = class_prior(data["train_y"])

    augment = make_augmenter(tf, args.seed, args.room)
    sample_w = (data["train_soft"] * class_w).sum(axis=1).astype(np.float32)
    targets = data["train_soft"]
    if args.teacher is not None:
        teacher = teacher_probs(args.teacher, data["train_x"], out / "teacher_probs.npy")
        targets = ((1.0 - args.distill) * targets + args.distill * teacher).astype(np.float32)
        agree = float(np.mean(teacher.argmax(1) == data["train_y"]))
        print(f"distilling from {args.teacher} ({args.distill:g} of each target; it agrees with "
              f"{agree:.3f} of the training majorities)", flush=True)
    ds = tf.data.Dataset.from_tensor_slices((data["train_x"], targets, sample_w))
    ds = ds.shuffle(n_train, seed=args.seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(args.batch, drop_remainder=True)
    ds = ds.map(lambda x, y, w: (augment(tf.cast(x, tf.float32)[..., None] / 255.0), y, w),
                num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
    steps = args.steps or n_train // args.batch

    run = RunFolder(out)
    per_face_standardize(tf)          # registers the layer so --resume can load the checkpoint
    best_path = run.best_weights
    model, state = run.open(tf, args.resume, lambda: build_model(tf, args.width, args.arch), tf.keras.losses.CategoricalCrossentropy(), args.lr)
    print(f"parameters: {model.count_params():,}", flush=True)
    average = (WeightAverage(out / "average.weights.npz", int(args.average_from * args.epochs))
               if args.average_from > 0 else None)
    averaged = build_model(tf, args.width, args.arch) if average is not None else None

    def val_report(m) -> dict:
        return classification_report(data["val_y"], predict(m, data["val_x"]).argmax(1))

    def load_average(m) -> None:
        """The averaged weights, with batch-norm statistics measured afresh on the training faces."""
        m.set_weights(average.weights())
        x = data["train_x"]
        recompute_batchnorm(tf, m, (x[i:i + 256].astype(np.float32)[..., None] / 255.0
                                    for i in range(0, len(x), 256)))

    class EpochEnd(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rep = val_report(self.model)
            score = rep["accuracy"] + rep["balanced_accuracy"]
            entry = {"epoch": epoch + 1, "loss": float(logs.get("loss", 0.0)),
                     "val_accuracy": rep["accuracy"], "val_balanced": rep["balanced_accuracy"],
                     "lr": float(lr_at(epoch, args.epochs, args.lr)), "time": time.time()}
            avg_note = ""
            if average is not None and average.add(epoch, self.model.get_weights()):
                load_average(averaged)
                avg = val_report(averaged)
                entry.update(average_accuracy=avg["accuracy"], average_balanced=avg["balanced_accuracy"],
                             averaged_epochs=average.count)
                avg_note = (f"  average of {average.count}: acc {avg['accuracy']:.4f} "
                            f"balanced {avg['balanced_accuracy']:.4f}")
            state["history"].append(entry)
            if score > state["best_score"]:
                state["best_score"] = score
                state["best_epoch"] = epoch + 1
                self.model.save_weights(best_path)
            state["epoch"] = epoch + 1
            run.save(self.model, state)
            print(f"epoch {epoch + 1}: val acc {rep['accuracy']:.4f} balanced "
                  f"{rep['balanced_accuracy']:.4f}{avg_note}", flush=True)

    if state["epoch"] < args.epochs:
        model.fit(
            ds, epochs=args.epochs, initial_epoch=state["epoch"], steps_per_epoch=steps,
            callbacks=[tf.keras.callbacks.LearningRateScheduler(lambda e: lr_at(e, args.epochs, args.lr)),
                       EpochEnd()],
            verbose=0 if args.quiet else 1,
        )
    # rebuild in float32 for export (mixed-precision variables are float32 already)
    tf.keras.mixed_precision.set_global_policy("float32")
    trained = model
    model = build_model(tf, args.width, args.arch)
    model.set_weights(trained.get_weights())
    selected = "last"
    if best_path.is_file():
        model.load_weights(best_path)
        selected = "best"
    if average is not None and average.count:
        averaged = build_model(tf, args.width, args.arch)
        load_average(averaged)
        avg = val_report(averaged)
        print(f"average of {average.count} epochs: val acc {avg['accuracy']:.4f} balanced "
              f"{avg['balanced_accuracy']:.4f}", flush=True)
        own = val_report(model)        # the best (or last) epoch, measured the same way in float32
        print(f"{selected} epoch: val acc {own['accuracy']:.4f} balanced {own['balanced_accuracy']:.4f}", flush=True)
        if avg["accuracy"] + avg["balanced_accuracy"] > own["accuracy"] + own["balanced_accuracy"]:
            model, selected = averaged, "average"
    print(f"exporting the {selected} weights", flush=True)

    # post-hoc logit adjustment for the rare distress classes, folded into the final bias
    val_probs = predict(with_flip_average(tf, model) if args.tta else model, data["val_x"])
    tau, val_rep = choose_logit_adjustment(val_probs, data["val_y"], prior)
    dense = model.get_layer("logits")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, bias - tau * np.log(prior).astype(np.float32)])
    if args.tta:
        model = with_flip_average(tf, model)
    print(f"logit adjustment tau={tau}: val acc {val_rep['accuracy']:.4f} "
          f"balanced {val_rep['balanced_accuracy']:.4f}", flush=True)

    rng = np.random.default_rng(args.seed)
    rep_images = data["train_x"][rng.choice(n_train, size=min(500, n_train), replace=False)].astype(np.float32)
    rep_images[::4] *= rng.uniform(0.1, 0.5, size=(len(rep_images[::4]), 1, 1))   # calibrate on dim faces too
    float_path, int8_path = export_float_and_int8(
        tf, model, out, FACE_STEM, [img[None, :, :, None] / 255.0 for img in rep_images])

    # final numbers through edge's runtime and preprocessing, the service's own code path
    from edge.inference.face import FaceClassifier

    metrics = {"parameters": int(model.count_params()), "epochs": state["epoch"], "tta": args.tta,
               "arch": args.arch, "room_augmentation": args.room,
               "best_epoch": state.get("best_epoch"), "selected": selected,
               "averaged_epochs": average.count if selected == "average" else None,
               "average_from_epoch": average.start if selected == "average" else None,
               "logit_adjust_tau": tau, "seed": args.seed,
               "teacher": args.teacher.name if args.teacher else None,
               "distill": args.distill if args.teacher else None,
               "validation": val_rep}
    for kind, path in (("float", float_path), ("int8", int8_path)):
        clf = FaceClassifier(path)
        probs = clf.classify_batch(data["test_x"])
        metrics[kind] = {
            "bytes": path.stat().st_size,
            "ferplus_publictest": classification_report(data["test_y"], probs.argmax(1)),
            "fer2013_publictest": classification_report(
                data["test_fer_all_y"], clf.classify_batch(data["test_fer_all_x"]).argmax(1)),
        }
    metrics["labels"] = list(LABELS)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for kind in ("float", "int8"):
        r = metrics[kind]["ferplus_publictest"]
        print(f"{kind}: FER+ PublicTest acc {r['accuracy']:.4f} balanced {r['balanced_accuracy']:.4f}; "
              f"FER-2013 labels acc {metrics[kind]['fer2013_publictest']['accuracy']:.4f}", flush=True)
    if args.install:
        install(out, FACE_STEM)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
