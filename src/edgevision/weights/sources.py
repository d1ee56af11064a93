"""Where weights come from, and what each source's checkpoints imply for the architecture and
preprocessing.

Some libraries train the same architecture with other BN epsilons or padding (torchvision's
MobileNetV3 and EfficientNet B5-B7 use BN eps 1e-3; efficientnet_pytorch uses TensorFlow "same" padding and eps 1e-3).
``create_for_source`` builds the registered model with those spec overrides so converted weights
reproduce the source's outputs, and the overrides are stored in the converted file.
"""
from __future__ import annotations

from ..registry import IMAGENET_INCEPTION, get_entry

# (source, family) -> spec overrides the source's checkpoints need
SPEC_OVERRIDES = {
    ("torchvision", "mobilenetv3"): dict(bn_eps=1e-3),
    ("torchvision", "efficientnetv2"): dict(padding="", bn_eps=1e-3),
    ("efficientnet_pytorch", "efficientnet"): dict(padding="same", bn_eps=1e-3),
}
# per model, where a source's variants of one family differ (torchvision's B5-B7 are TF ports)
MODEL_SPEC_OVERRIDES = {
    ("torchvision", "efficientnet_b5"): dict(bn_eps=1e-3),
    ("torchvision", "efficientnet_b6"): dict(bn_eps=1e-3),
    ("torchvision", "efficientnet_b7"): dict(bn_eps=1e-3),
}
# (source, family) -> input-config overrides (preprocessing the source's weights were trained with)
INPUT_OVERRIDES = {
    ("efficientnet_pytorch", "efficientnet"): dict(interpolation="bicubic"),
    ("efficientnet_pytorch", "efficientnet_lite"): dict(**IMAGENET_INCEPTION),
    ("torchvision", "mobilenetv2"): dict(interpolation="bilinear"),
    ("torchvision", "mobilenetv3"): dict(interpolation="bilinear"),
    ("torchvision", "efficientnet"): dict(interpolation="bicubic"),
    ("torchvision", "efficientnetv2"): dict(interpolation="bilinear", mean=(0.485, 0.456, 0.406),
                                            std=(0.229, 0.224, 0.225), crop_pct=1.0),
    ("torchvision", "convnext"): dict(interpolation="bilinear"),
}


def create_for_source(name: str, source: str, **kwargs):
    """``create_model(name)`` with the spec and preprocessing that ``source``'s checkpoints need."""
    import dataclasses

    from ..factory import create_model
    fam = get_entry(name).family
    overrides = dict(SPEC_OVERRIDES.get((source, fam), {}))
    overrides.update(MODEL_SPEC_OVERRIDES.get((source, name), {}))
    overrides.update(kwargs)
    model = create_model(name, **overrides)
    inp = INPUT_OVERRIDES.get((source, fam))
    if inp:
        model.input_config = dataclasses.replace(model.input_config, **inp)
    return model
