"""The course networks. Each is an ``nn.Module`` whose docstring gives input and output shapes.

- :class:`DepthMaskNet`: the baseline encoder-decoder with a depth head and a mask head (notebook 02).
- :func:`count_parameters`, :func:`activation_memory`, :func:`describe`: what a model costs.
"""
from lib.models.depth_net import DepthMaskNet, activation_memory, count_parameters, describe  # noqa: F401
from lib.models.focal_stack import FocalStackNet, slice_code  # noqa: F401
from lib.models.gan import PatchCritic, Pix2Pix, UNetGenerator, bokeh_condition, critic_loss, gan_step, generator_loss  # noqa: F401
from lib.models.vae import ConditionalVAE, kl_divergence, vae_loss  # noqa: F401
from lib.models.tiling import blend_weight, crop_resize, tile_boxes, tile_consistency_error, tiled_predict  # noqa: F401
from lib.models.fusion import PatchFusion, consistency_loss, shifted_pairs  # noqa: F401
