"""torch.hub entry points with the official names: ``torch.hub.load("<this repository>", "vjepa2_vit_large")``.

As the official ``hubconf.py``: each model entry returns ``(encoder, predictor)`` (the AC entry ``(encoder,
ac_predictor)``), downloaded once into the torch hub cache when ``pretrained`` (random otherwise), and
``vjepa2_preprocessor`` returns the evaluation transform.
"""

dependencies = ["torch", "numpy", "safetensors", "av", "yaml", "tqdm", "scipy", "PIL"]


def _pair(encoder: str, predictor: str, pretrained: bool):
    from vjepa2.weights import load_encoder, load_predictor

    return load_encoder(encoder, pretrained=pretrained), load_predictor(predictor, pretrained=pretrained)


def vjepa2_preprocessor(crop_size: int = 256):
    """``frames uint8 [T, H, W, 3] -> [3, T, crop, crop]``: short side to crop * 256/224, centre crop, normalise."""
    import functools

    from vjepa2.data import preprocess

    return functools.partial(preprocess, resolution=crop_size)


def vjepa2_vit_large(pretrained: bool = True, **kwargs):
    return _pair("vit_large", "vit_large", pretrained)


def vjepa2_vit_huge(pretrained: bool = True, **kwargs):
    return _pair("vit_huge", "vit_huge", pretrained)


def vjepa2_vit_giant(pretrained: bool = True, **kwargs):
    return _pair("vit_giant", "vit_giant", pretrained)


def vjepa2_vit_giant_384(pretrained: bool = True, **kwargs):
    return _pair("vit_giant_384", "vit_giant_384", pretrained)


def vjepa2_ac_vit_giant(pretrained: bool = True, **kwargs):
    from vjepa2.weights import load_ac_predictor, load_encoder
    from vjepa2.weights.hub import fetch

    if not pretrained:
        return load_encoder("vit_giant"), load_ac_predictor("ac_vit_giant")
    path = fetch("ac_vit_giant")
    return load_encoder("vit_giant", path, key="encoder"), load_ac_predictor("ac_vit_giant", path)


def vjepa2_1_vit_base_384(pretrained: bool = True, **kwargs):
    return _pair("vjepa2_1_vit_base_384", "vjepa2_1_vit_base_384", pretrained)


def vjepa2_1_vit_large_384(pretrained: bool = True, **kwargs):
    return _pair("vjepa2_1_vit_large_384", "vjepa2_1_vit_large_384", pretrained)


def vjepa2_1_vit_giant_384(pretrained: bool = True, **kwargs):
    return _pair("vjepa2_1_vit_giant_384", "vjepa2_1_vit_giant_384", pretrained)


def vjepa2_1_vit_gigantic_384(pretrained: bool = True, **kwargs):
    return _pair("vjepa2_1_vit_gigantic_384", "vjepa2_1_vit_gigantic_384", pretrained)
