import pytest
import torch

from vjepa2.config import encoder_config
from vjepa2.models import VisionTransformer


def sharp(model: VisionTransformer) -> VisionTransformer:
    """Scale q/k so attention is peaked and outputs depend strongly on RoPE positions (init std 0.02 is too flat)."""
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.qkv.weight[: 2 * model.embed_dim] *= 15
    return model.eval()


@pytest.fixture(scope="module")
def encoder() -> VisionTransformer:
    torch.manual_seed(0)
    return sharp(VisionTransformer(encoder_config("vit_test")))


@torch.no_grad()
def test_features_depend_on_positions(encoder):
    """Without positions a transformer is permutation-equivariant; RoPE must break that (makes the grid tests bite)."""
    video = torch.randn(1, 3, 2, 32, 64)
    swapped = torch.cat([video[..., 32:], video[..., :32]], dim=-1)
    unswap = lambda x: x.view(1, 2, 2, 2, -1).flip(2).flatten(1, 3)  # noqa: E731  (t, h, w-half) tokens
    assert (encoder(swapped) - unswap(encoder(video))).abs().max() > 1e-2


def _tokens_where(grid: tuple[int, int, int], keep) -> torch.Tensor:
    t, h, w = torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij")
    return torch.nonzero(keep(t, h, w).flatten()).flatten()


@torch.no_grad()
def test_context_does_not_depend_on_masked_out_frames(encoder):
    video = torch.randn(1, 3, 4, 64, 64)
    keep = _tokens_where((2, 4, 4), lambda t, h, w: t == 0)[None]  # first tubelet only
    changed = video.clone()
    changed[:, :, 2:] = torch.randn_like(changed[:, :, 2:])
    torch.testing.assert_close(encoder(video, keep), encoder(changed, keep), atol=0, rtol=0)
    assert (encoder(video) - encoder(changed)).abs().max() > 1e-3  # the full clip does see them


@torch.no_grad()
def test_non_square_input_uses_its_own_grid(encoder):
    """A 64x32 input equals the masked forward of a 64x64 input restricted to the same columns."""
    square = torch.randn(1, 3, 4, 64, 64)
    left = _tokens_where((2, 4, 4), lambda t, h, w: w < 2)[None]
    torch.testing.assert_close(encoder(square[..., :32]), encoder(square, left), atol=1e-5, rtol=0)
    top = _tokens_where((2, 4, 4), lambda t, h, w: h < 2)[None]
    torch.testing.assert_close(encoder(square[..., :32, :]), encoder(square, top), atol=1e-5, rtol=0)


@torch.no_grad()
def test_frame_count_uses_its_own_grid(encoder):
    clip = torch.randn(2, 3, 6, 32, 48)
    first = _tokens_where((3, 2, 3), lambda t, h, w: t < 2)[None].expand(2, -1)
    torch.testing.assert_close(encoder(clip[:, :, :4]), encoder(clip, first), atol=1e-5, rtol=0)


@torch.no_grad()
def test_image_runs_as_two_frame_clip(encoder):
    image = torch.randn(2, 3, 32, 32)
    clip = image[:, :, None].repeat(1, 1, 2, 1, 1)
    torch.testing.assert_close(encoder(image), encoder(clip), atol=0, rtol=0)
    torch.testing.assert_close(encoder(image[:, :, None]), encoder(clip), atol=0, rtol=0)
    assert encoder(torch.randn(1, 3, 5, 32, 32)).shape == (1, 2 * 4, 48)  # odd frame count floored by the tubelet


@torch.no_grad()
def test_out_layers_through_final_norm(encoder):
    video = torch.randn(1, 3, 2, 32, 32)
    outs = encoder(video, out_layers=[0, 1])
    assert len(outs) == 2
    torch.testing.assert_close(outs[1], encoder(video), atol=0, rtol=0)
    torch.testing.assert_close(outs[0].mean(-1), torch.zeros(1, 4), atol=1e-5, rtol=0)  # normed
    with pytest.raises(ValueError, match="out_layers"):
        encoder(video, out_layers=[5])


def test_activation_checkpointing_gives_same_values_and_grads():
    enc = VisionTransformer(encoder_config("vit_test"))
    video = torch.randn(2, 3, 2, 32, 32)
    masks = torch.tensor([[0, 1, 3], [0, 2, 3]])
    grads = []
    for flag in (False, True):
        enc.grad_checkpointing = flag
        enc.zero_grad()
        out = enc(video, masks)
        out.square().mean().backward()
        grads.append((out.detach(), enc.blocks[0].attn.qkv.weight.grad.clone()))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_bf16_autocast_close_to_fp32(encoder):
    video = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        ref = encoder(video)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = encoder(video)
    assert low.dtype == torch.bfloat16
    cos = torch.nn.functional.cosine_similarity(low.float(), ref, dim=-1)
    assert cos.min() > 0.99


@pytest.mark.parametrize(
    ("masks", "match"),
    [
        (torch.tensor([[0, 99]]), "outside"),
        (torch.tensor([0, 1]), r"\[B, K\]"),
        (torch.tensor([[0.0, 1.0]]), "integer"),
    ],
)
def test_bad_masks_are_refused(encoder, masks, match):
    with pytest.raises(ValueError, match=match):
        encoder(torch.randn(1, 3, 2, 32, 32), masks)


def test_bad_video_shape_is_refused(encoder):
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        encoder(torch.randn(3, 32, 32))


def test_interleaved_layout_changes_features():
    torch.manual_seed(0)
    a = sharp(VisionTransformer(encoder_config("vit_test")))
    b = VisionTransformer(encoder_config("vit_test", rope_layout="interleaved")).eval()
    b.load_state_dict(a.state_dict())
    video = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert (a(video) - b(video)).abs().max() > 1e-3
