"""RGB-D data: the built-in synthetic scenes, the real Middlebury motorcycle, and readers of
the public dataset formats. Every item is a dict of tensors (see ``CONTRACT.md``):
``image`` (3,H,W) float32 sRGB in [0,1], ``depth`` (1,H,W) metres, ``valid`` (1,H,W) bool,
and ``mask`` (1,H,W) int64, ``name`` and ``intrinsics`` (3,3) when known.
"""
from lib.data.synthetic import SyntheticRGBD, synthetic_scene  # noqa: F401
from lib.data.middlebury import middlebury_motorcycle  # noqa: F401
from lib.data.formats import DIODE, ImageDepthFolder, NYUv2Labeled, ReDWeb  # noqa: F401
from lib.data.bokeh_pairs import BokehPairs  # noqa: F401
from lib.data.fields import Fields  # noqa: F401
